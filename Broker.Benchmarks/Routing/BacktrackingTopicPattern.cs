namespace Broker.Benchmarks.Routing;

/// <summary>
/// The matcher <c>TopicPattern</c> had before issue 11 (backtracking over '#'), kept here only to be measured
/// against: exponential in the number of '#'s on keys it does not match.
/// </summary>
internal sealed class BacktrackingTopicPattern(string pattern)
{
    private const int MaxStackWords = 32;
    private readonly string[] _words = pattern.Split('.');

    public bool Matches(ReadOnlySpan<char> key)
    {
        var count = key.Count('.') + 1;
        Span<Range> words = count <= MaxStackWords ? stackalloc Range[count] : new Range[count];
        key.Split(words, '.');
        return Match(0, key, words, 0);
    }

    private bool Match(int p, ReadOnlySpan<char> key, ReadOnlySpan<Range> words, int w)
    {
        while (p < _words.Length)
        {
            var word = _words[p];
            if (word == "#")
            {
                if (p == _words.Length - 1)
                {
                    return true;
                }

                for (var skip = w; skip <= words.Length; skip++)
                {
                    if (Match(p + 1, key, words, skip))
                    {
                        return true;
                    }
                }

                return false;
            }

            if (w == words.Length || (word != "*" && !key[words[w]].SequenceEqual(word)))
            {
                return false;
            }

            p++;
            w++;
        }

        return w == words.Length;
    }
}
