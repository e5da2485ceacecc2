using Broker.Routing;
using NUnit.Framework;

namespace Broker.Tests.Routing;

/// <summary>
/// Hostile patterns cost work linear in the key's words: counted in steps, not timed. A backtracking matcher
/// takes about C(words + hashes, hashes) steps on these (some 10^11 for seven '#'s and 120 words).
/// </summary>
[TestFixture]
public sealed class TopicMatchingWorkTests
{
    private const int KeyWords = 120;

    private static readonly string s_key = string.Join('.', Enumerable.Range(0, KeyWords).Select(i => "w" + i));
    private static readonly string s_keyEndingInZ = string.Join('.', Enumerable.Range(0, KeyWords - 1).Select(i => "w" + i).Append("z"));
    private static readonly string s_keyOfAs = string.Join('.', Enumerable.Repeat("a", KeyWords));

    public static IEnumerable<TestCaseData> HostilePatterns()
    {
        yield return new TestCaseData("#.#.#.#.#.#.#.z").SetArgDisplayNames("seven '#' then z");
        yield return new TestCaseData(string.Join('.', Enumerable.Repeat("#", 50)) + ".z").SetArgDisplayNames("fifty '#' then z");
        yield return new TestCaseData(string.Join('.', Enumerable.Repeat("#", 50))).SetArgDisplayNames("fifty '#'");
        yield return new TestCaseData(string.Join('.', Enumerable.Repeat("#.*", 50)) + ".z").SetArgDisplayNames("fifty '#.*' then z");
        yield return new TestCaseData(string.Join('.', Enumerable.Repeat("#.a", 20)) + ".z").SetArgDisplayNames("twenty '#.a' then z");
    }

    [TestCaseSource(nameof(HostilePatterns))]
    public void A_hostile_pattern_costs_the_matcher_at_most_words_times_pattern_length(string pattern)
    {
        var patternWords = pattern.Split('.').Length;
        var bound = (long)KeyWords * (patternWords + 1);
        var topic = new TopicPattern(pattern);

        foreach (var key in new[] { s_key, s_keyEndingInZ, s_keyOfAs })
        {
            var matched = topic.Matches(key, out var steps);

            Assert.That(steps, Is.LessThanOrEqualTo(bound), $"'{pattern}' against a {KeyWords}-word key");
            Assert.That(matched, Is.EqualTo(ExpectedMatch(pattern, key)));
        }
    }

    [TestCaseSource(nameof(HostilePatterns))]
    public void A_hostile_pattern_costs_the_trie_at_most_words_times_nodes(string pattern)
    {
        var trie = new TopicTrie<string>();
        trie.Add(pattern, pattern);
        trie.Add("w0.#", "w0.#");
        AssertBounded(trie, [pattern, "w0.#"]);
    }

    [Test]
    public void Every_hostile_pattern_in_one_trie_costs_at_most_words_times_nodes()
    {
        // Shared prefixes and '#' nodes reachable along many paths: the walk's set of nodes is deduplicated.
        var trie = new TopicTrie<string>();
        var patterns = HostilePatterns().Select(c => (string)c.Arguments[0]!).ToList();
        for (var i = 1; i <= 20; i++)
        {
            patterns.Add(string.Join('.', Enumerable.Repeat("#.a", i)));
            patterns.Add(string.Join('.', Enumerable.Repeat("*.#", i)) + ".z");
        }

        foreach (var pattern in patterns)
        {
            trie.Add(pattern, pattern);
        }

        AssertBounded(trie, patterns);
    }

    [Test]
    public void An_ordinary_publish_visits_a_handful_of_nodes_among_a_thousand_patterns()
    {
        var trie = new TopicTrie<string>();
        for (var i = 0; i < 1000; i++)
        {
            trie.Add($"region{i % 50}.*.prices.{i}.#", "p" + i);
        }

        trie.Add("region7.#", "all of region7");
        var found = new List<string>();

        var steps = trie.Match("region7.eu.prices.407", found, static (v, l) => l.Add(v));

        Assert.That(found, Is.EquivalentTo(new[] { "p407", "all of region7" }));
        Assert.That(steps, Is.LessThan(20), "the walk follows the key's words, not every pattern");
    }

    private static void AssertBounded(TopicTrie<string> trie, IReadOnlyList<string> patterns)
    {
        foreach (var key in new[] { s_key, s_keyEndingInZ, s_keyOfAs })
        {
            var found = new List<string>();
            var steps = trie.Match(key, found, static (value, list) => list.Add(value));

            // Per word, each node in the set is visited once and adds at most three nodes (itself as '#', its
            // '*' child, its child for the word), each with its run of '#' children; the set holds no node twice.
            var bound = 5L * (KeyWords + 1) * trie.NodeCount;
            Assert.That(steps, Is.LessThanOrEqualTo(bound), $"{trie.NodeCount} nodes, a {KeyWords}-word key");
            Assert.That(found.Order(), Is.EqualTo(patterns.Where(p => ExpectedMatch(p, key)).Order()), key);
        }
    }

    // The reference matcher's recursion, memoized on (pattern word, key word): polynomial on these patterns.
    private static bool ExpectedMatch(string pattern, string key)
    {
        var p = pattern.Split('.');
        var k = key.Split('.');
        var memo = new Dictionary<(int, int), bool>();
        return Match(0, 0);

        bool Match(int i, int j)
        {
            if (memo.TryGetValue((i, j), out var known))
            {
                return known;
            }

            var result = i == p.Length
                ? j == k.Length
                : p[i] == "#"
                    ? Match(i + 1, j) || (j < k.Length && Match(i, j + 1))
                    : j < k.Length && (p[i] == "*" || p[i] == k[j]) && Match(i + 1, j + 1);
            memo[(i, j)] = result;
            return result;
        }
    }
}
