using System.Text;
using Broker.Security;
using FsCheck;
using FsCheck.Fluent;

namespace Broker.Tests.Security;

/// <summary>A small pattern for property tests; its text is what a rule would say (Plus shows as '+').</summary>
public sealed class TestPattern
{
    internal TestPattern(PatternWordKind[] kinds, string[] texts, char[] gaps)
    {
        Kinds = kinds;
        Texts = texts;
        Gaps = gaps;
    }

    internal PatternWordKind[] Kinds { get; }

    internal string[] Texts { get; }

    internal char[] Gaps { get; }

    internal PatternWord[] Words => [.. Kinds.Select((k, i) => new PatternWord(k, Texts[i]))];

    internal DestinationPattern Compile() => DestinationPattern.FromWords(ToString(), Words, Gaps);

    public override string ToString()
    {
        var text = new StringBuilder();
        for (var i = 0; i < Kinds.Length; i++)
        {
            if (i > 0)
            {
                text.Append(Gaps[i - 1]);
            }

            text.Append(Kinds[i] switch { PatternWordKind.Star => "*", PatternWordKind.Hash => "#", PatternWordKind.Plus => "+", _ => Texts[i] });
        }

        return text.ToString();
    }
}

/// <summary>
/// The pattern semantics written down directly, by backtracking, independent of the automata in
/// <see cref="DestinationPattern"/>: words split at '.' and '/', the separator between two words
/// matters, '*' one word, '#' zero or more (taking the separator after it, or before it when last),
/// consecutive '#' one '#'. And every key over a small alphabet, to compare against.
/// </summary>
internal static class PatternReference
{
    /// <summary>Words keys are made of: those patterns use, and one no pattern names.</summary>
    public static readonly string[] KeyWords = ["a", "b", "c"];

    public static readonly string[] PatternLiterals = ["a", "b"];

    public static readonly char[] Separators = ['.', '/'];

    /// <summary>Every key of 1 to <paramref name="maxWords"/> words over <see cref="KeyWords"/> and both separators.</summary>
    public static List<string> AllKeys(int maxWords)
    {
        var keys = new List<string>();
        var current = KeyWords.ToList();
        for (var length = 1; length <= maxWords; length++)
        {
            keys.AddRange(current);
            if (length == maxWords)
            {
                break;
            }

            current = [.. from key in current from gap in Separators from word in KeyWords select key + gap + word];
        }

        return keys;
    }

    public static bool Matches(TestPattern pattern, string key)
    {
        var (kinds, texts, gaps) = Collapse(pattern);
        var (words, keyGaps) = DestinationPattern.Split(key);
        var n = kinds.Length;
        var m = words.Length;
        return Word(0, 0);

        // Pattern words i.. against key words j.., the separator into word i already checked.
        bool Word(int i, int j)
        {
            // '#' as no word: the next word starts here (a last '#' is handled in After).
            if (kinds[i] == PatternWordKind.Hash && i < n - 1 && Word(i + 1, j))
            {
                return true;
            }

            if (j >= m)
            {
                return false;
            }

            switch (kinds[i])
            {
                case PatternWordKind.Literal:
                    return words[j] == texts[i] && After(i, j);
                case PatternWordKind.Star:
                    return After(i, j);
                default:
                    for (var last = j; last < m; last++)
                    {
                        if (After(i, last))
                        {
                            return true;
                        }
                    }

                    return false;
            }
        }

        // Pattern word i matched up to key word last.
        bool After(int i, int last)
        {
            if (i == n - 1)
            {
                return last == m - 1;
            }

            if (i + 1 == n - 1 && kinds[i + 1] == PatternWordKind.Hash && last == m - 1)
            {
                return true;
            }

            return last + 1 < m && gaps[i] == keyGaps[last] && Word(i + 1, last + 1);
        }
    }

    private static (PatternWordKind[] Kinds, string[] Texts, char[] Gaps) Collapse(TestPattern pattern)
    {
        var kinds = new List<PatternWordKind> { pattern.Kinds[0] };
        var texts = new List<string> { pattern.Texts[0] };
        var gaps = new List<char>();
        for (var i = 1; i < pattern.Kinds.Length; i++)
        {
            if (pattern.Kinds[i] == PatternWordKind.Hash && kinds[^1] == PatternWordKind.Hash)
            {
                continue;
            }

            gaps.Add(pattern.Gaps[i - 1]);
            kinds.Add(pattern.Kinds[i]);
            texts.Add(pattern.Texts[i]);
        }

        return ([.. kinds], [.. texts], [.. gaps]);
    }

    public static Gen<TestPattern> Patterns(int maxWords, bool withPlus = false)
    {
        var kinds = withPlus
            ? Gen.Elements(PatternWordKind.Literal, PatternWordKind.Literal, PatternWordKind.Star, PatternWordKind.Hash, PatternWordKind.Plus)
            : Gen.Elements(PatternWordKind.Literal, PatternWordKind.Literal, PatternWordKind.Star, PatternWordKind.Hash);
        return from n in Gen.Choose(1, maxWords)
               from k in Gen.ArrayOf(kinds, n)
               from t in Gen.ArrayOf(Gen.Elements(PatternLiterals), n)
               from g in Gen.ArrayOf(Gen.Elements(Separators), n - 1)
               select new TestPattern(k, [.. k.Select((kind, i) => kind == PatternWordKind.Literal ? t[i] : "")], g);
    }
}

/// <summary>Arbitraries for <see cref="FsCheck.NUnit.PropertyAttribute"/>.</summary>
public static class PatternArbitraries
{
    public static Arbitrary<TestPattern> Pattern() => PatternReference.Patterns(3, withPlus: true).ToArbitrary();
}
