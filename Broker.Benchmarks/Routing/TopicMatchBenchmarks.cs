using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Broker.Routing;

namespace Broker.Benchmarks.Routing;

/// <summary>
/// Matching a published topic key against wildcard subscriptions: before issue 11 (every pattern tested by
/// the backtracking matcher), every pattern tested by the linear <see cref="TopicPattern"/>, and the
/// <see cref="TopicTrie{T}"/> the router uses now. Ordinary: 1,000 patterns of 3-5 words, keys of 3-5 words,
/// time per key. Hostile: <c>#.#.#.#.#.#.#.z</c> against a key that does not end in z (20 words: the old
/// matcher's limit of patience; 120 words: the attack of issue 11, new matchers only).
/// </summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class TopicMatchBenchmarks
{
    private const int Patterns = 1000;
    private const int Keys = 64;
    private const string Hostile = "#.#.#.#.#.#.#.z";

    private static readonly Action<object, int[]> s_count = static (_, counter) => counter[0]++;

    private readonly int[] _counter = new int[1];
    private BacktrackingTopicPattern[] _old = [];
    private TopicPattern[] _linear = [];
    private TopicTrie<object> _trie = new();
    private string[] _keys = [];
    private BacktrackingTopicPattern _oldHostile = new(Hostile);
    private TopicPattern _linearHostile = new(Hostile);
    private TopicTrie<object> _trieHostile = new();
    private string _key20 = "";
    private string _key120 = "";

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        var patterns = Enumerable.Range(0, Patterns).Select(_ => RandomKey(random, wildcards: true)).ToArray();
        _keys = Enumerable.Range(0, Keys).Select(_ => RandomKey(random, wildcards: false)).ToArray();
        _old = [.. patterns.Select(p => new BacktrackingTopicPattern(p))];
        _linear = [.. patterns.Select(p => new TopicPattern(p))];
        _trie = new TopicTrie<object>();
        foreach (var pattern in patterns)
        {
            _trie.Add(pattern, pattern);
        }

        _trieHostile = new TopicTrie<object>();
        _trieHostile.Add(Hostile, Hostile);
        _key20 = string.Join('.', Enumerable.Range(0, 20).Select(i => "w" + i));
        _key120 = string.Join('.', Enumerable.Range(0, 120).Select(i => "w" + i));

        // What is measured is what is meant: the three find the same matches, and some.
        var old = OldScan();
        if (old == 0 || old != LinearScan() || old != Trie())
        {
            throw new InvalidOperationException($"the matchers disagree: {old}, {LinearScan()}, {Trie()}");
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Keys)]
    [BenchmarkCategory("ordinary: 1,000 patterns, per key")]
    public int OldScan()
    {
        var matches = 0;
        foreach (var key in _keys)
        {
            foreach (var pattern in _old)
            {
                matches += pattern.Matches(key) ? 1 : 0;
            }
        }

        return matches;
    }

    [Benchmark(OperationsPerInvoke = Keys)]
    [BenchmarkCategory("ordinary: 1,000 patterns, per key")]
    public int LinearScan()
    {
        var matches = 0;
        foreach (var key in _keys)
        {
            foreach (var pattern in _linear)
            {
                matches += pattern.Matches(key) ? 1 : 0;
            }
        }

        return matches;
    }

    [Benchmark(OperationsPerInvoke = Keys)]
    [BenchmarkCategory("ordinary: 1,000 patterns, per key")]
    public int Trie()
    {
        _counter[0] = 0;
        foreach (var key in _keys)
        {
            _trie.Match(key, _counter, s_count);
        }

        return _counter[0];
    }

    [Benchmark(Baseline = true)]
    [BenchmarkCategory("hostile: 20 words")]
    public bool OldHostile20() => _oldHostile.Matches(_key20);

    [Benchmark]
    [BenchmarkCategory("hostile: 20 words")]
    public bool LinearHostile20() => _linearHostile.Matches(_key20);

    [Benchmark]
    [BenchmarkCategory("hostile: 20 words")]
    public long TrieHostile20() => _trieHostile.Match(_key20, _counter, s_count);

    [Benchmark(Baseline = true)]
    [BenchmarkCategory("hostile: 120 words")]
    public bool LinearHostile120() => _linearHostile.Matches(_key120);

    [Benchmark]
    [BenchmarkCategory("hostile: 120 words")]
    public long TrieHostile120() => _trieHostile.Match(_key120, _counter, s_count);

    // Words from small vocabularies per level, so that patterns share prefixes and some keys match.
    private static string RandomKey(Random random, bool wildcards)
    {
        var words = new string[random.Next(3, 6)];
        for (var i = 0; i < words.Length; i++)
        {
            var roll = random.Next(100);
            words[i] = wildcards && roll < 25 ? "*"
                : wildcards && roll < 33 ? "#"
                : $"{(char)('a' + i)}{random.Next(i == 0 ? 4 : 8)}";
        }

        return string.Join('.', words);
    }
}
