using Broker.Routing;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace Broker.Tests.Routing;

/// <summary>
/// The linear matcher (<see cref="TopicPattern"/>) and the trie (<see cref="TopicTrie{T}"/>) agree with an
/// obviously correct backtracking matcher on random patterns and keys over a small alphabet of words,
/// empty words and '*' / '#' included (small inputs, so the reference's exponential worst case is harmless).
/// </summary>
[TestFixture]
public sealed class TopicMatchingPropertyTests
{
    private static readonly Gen<string> s_patternWord = Gen.Frequency(
        (4, Gen.Elements("a", "b", "ab", "")),
        (2, Gen.Constant("*")),
        (3, Gen.Constant("#")));

    // Keys may carry '*' and '#' as plain words: the matchers must take them literally.
    private static readonly Gen<string> s_keyWord = Gen.Frequency(
        (8, Gen.Elements("a", "b", "ab", "")),
        (1, Gen.Elements("*", "#")));

    private static readonly Gen<string> s_pattern = Words(s_patternWord, 7);

    private static readonly Gen<string> s_key = Words(s_keyWord, 9);

    [FsCheck.NUnit.Property(MaxTest = 3000)]
    public Property The_linear_matcher_agrees_with_the_reference() =>
        Prop.ForAll(Gen.Zip(s_pattern, s_key).ToArbitrary(), c =>
        {
            var (pattern, key) = c;
            var expected = Reference(pattern, key);
            return (new TopicPattern(pattern).Matches(key) == expected).Label($"'{pattern}' ~ '{key}': expected {expected}");
        });

    [FsCheck.NUnit.Property(MaxTest = 1500)]
    public Property The_trie_finds_exactly_the_matching_bindings_as_they_come_and_go() =>
        Prop.ForAll(TrieCases().ToArbitrary(), c =>
        {
            var trie = new TopicTrie<string>();
            var bindings = c.Patterns.Select((p, i) => trie.Add(p, i.ToString())).ToList();
            var live = Enumerable.Range(0, c.Patterns.Length).ToHashSet();
            var failures = new List<string>();
            Check("all added");

            for (var i = 0; i < c.Patterns.Length; i++)
            {
                if (c.Remove[i])
                {
                    trie.Remove(bindings[i]);
                    trie.Remove(bindings[i]); // twice is a no-op
                    live.Remove(i);
                }
            }

            Check("some removed");

            // Added again after removal: nodes (and their ids) are made anew.
            for (var i = 0; i < c.Patterns.Length; i++)
            {
                if (c.Remove[i])
                {
                    bindings[i] = trie.Add(c.Patterns[i], i.ToString());
                    live.Add(i);
                }
            }

            Check("added back");

            foreach (var binding in bindings)
            {
                trie.Remove(binding);
            }

            live.Clear();
            Check("all removed");
            if (trie.NodeCount != 1 || trie.Count != 0)
            {
                failures.Add($"empty trie keeps {trie.NodeCount} nodes, {trie.Count} bindings");
            }

            return (failures.Count == 0).Label(string.Join("; ", failures));

            void Check(string stage)
            {
                foreach (var key in c.Keys)
                {
                    var found = new List<string>();
                    trie.Match(key, found, static (value, list) => list.Add(value));
                    var expected = live.Where(i => Reference(c.Patterns[i], key)).Select(i => i.ToString()).Order().ToList();
                    if (!found.Order().SequenceEqual(expected))
                    {
                        failures.Add($"{stage}: key '{key}' against [{string.Join(", ", c.Patterns.Select(p => $"'{p}'"))}] found [{string.Join(",", found.Order())}], expected [{string.Join(",", expected)}]");
                    }
                }
            }
        });

    [TestCase("", new[] { "" })]
    [TestCase("a.", new[] { "a", "" })]
    [TestCase(".a..b", new[] { "", "a", "", "b" })]
    public void Words_split_as_string_split_does(string key, string[] words)
    {
        // The reference splits with string.Split; the matchers with the span enumerator. Same words.
        Assert.That(key.Split('.'), Is.EqualTo(words));
        var pattern = string.Join('.', words.Select(w => w.Length == 0 ? "" : "*"));
        Assert.That(new TopicPattern(pattern).Matches(key), Is.True);
        Assert.That(new TopicPattern(pattern + ".x").Matches(key), Is.False);
    }

    /// <summary>The reference: topic-exchange matching written as its definition, by backtracking.</summary>
    internal static bool Reference(string pattern, string key) => Reference(pattern.Split('.'), 0, key.Split('.'), 0);

    private static bool Reference(string[] pattern, int p, string[] key, int k)
    {
        if (p == pattern.Length)
        {
            return k == key.Length;
        }

        if (pattern[p] == "#")
        {
            // Zero words, or one word and still in the '#'.
            return Reference(pattern, p + 1, key, k) || (k < key.Length && Reference(pattern, p, key, k + 1));
        }

        return k < key.Length && (pattern[p] == "*" || pattern[p] == key[k]) && Reference(pattern, p + 1, key, k + 1);
    }

    private static Gen<string> Words(Gen<string> word, int max) =>
        Gen.Choose(1, max).SelectMany(n => Gen.ArrayOf(word, n)).Select(words => string.Join('.', words));

    private static Gen<TrieCase> TrieCases() =>
        from patterns in Gen.Choose(0, 8).SelectMany(n => Gen.ArrayOf(Gen.Frequency((5, s_pattern), (1, Gen.Elements("a.#", "#", "*.#", "a.*"))), n))
        from remove in Gen.ArrayOf(Gen.Elements(true, false), patterns.Length)
        from keys in Gen.Choose(1, 6).SelectMany(n => Gen.ArrayOf(s_key, n))
        select new TrieCase(patterns, remove, keys);

    public sealed record TrieCase(string[] Patterns, bool[] Remove, string[] Keys)
    {
        public override string ToString() =>
            $"patterns [{string.Join(", ", Patterns.Select(p => $"'{p}'"))}], remove [{string.Join(",", Remove)}], keys [{string.Join(", ", Keys.Select(k => $"'{k}'"))}]";
    }
}
