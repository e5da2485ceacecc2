using System.Buffers;

namespace Broker.Routing;

/// <summary>
/// A topic key pattern with RabbitMQ topic-exchange semantics: words separated by '.',
/// '*' matches exactly one word, '#' matches zero or more words.
/// </summary>
/// <remarks>
/// Matching runs the pattern as an automaton over its positions: the set of positions reachable after
/// each key word is kept in a small bool array and advanced once per word, so a key of n words costs
/// O(n × pattern words) whatever the pattern (no backtracking: <c>#.#.#.#.z</c> is as cheap as <c>a.b</c>).
/// Consecutive '#'s are one '#'. The router matches through <see cref="TopicTrie{T}"/>, which walks all
/// patterns at once the same way; this is the one-pattern form of that walk.
/// </remarks>
internal sealed class TopicPattern
{
    // Two arrays of positions on the stack up to this many bytes; a longer pattern rents them.
    private const int MaxStackStates = 256;

    private readonly string[] _words;
    private readonly WordKind[] _kinds;
    private readonly bool _hasHash;

    public TopicPattern(string pattern)
    {
        Pattern = pattern;
        var words = new List<string>();
        foreach (var range in pattern.AsSpan().Split('.'))
        {
            var word = pattern[range];
            if (word == "#" && words.Count > 0 && words[^1] == "#")
            {
                continue; // '#.#' matches exactly what '#' does
            }

            words.Add(word);
        }

        _words = [.. words];
        _kinds = [.. words.Select(w => w switch { "*" => WordKind.Star, "#" => WordKind.Hash, _ => WordKind.Literal })];
        _hasHash = _kinds.Contains(WordKind.Hash);
    }

    private enum WordKind : byte
    {
        Literal,
        Star,
        Hash,
    }

    public string Pattern { get; }

    public bool Matches(ReadOnlySpan<char> key) => Matches(key, out _);

    /// <summary>Matches <paramref name="key"/>; <paramref name="steps"/> counts the (word, position) pairs examined.</summary>
    internal bool Matches(ReadOnlySpan<char> key, out long steps)
    {
        steps = 0;
        if (!_hasHash)
        {
            return MatchesWordForWord(key, ref steps);
        }

        var states = _words.Length + 1;
        bool[]? rented = null;
        var buffer = states <= MaxStackStates / 2
            ? stackalloc bool[states * 2]
            : (rented = ArrayPool<bool>.Shared.Rent(states * 2)).AsSpan(0, states * 2);
        try
        {
            // current[i]: the first i pattern words have matched the key words read so far.
            var current = buffer[..states];
            var next = buffer[states..];
            current.Clear();
            current[0] = true;
            CloseOverHash(current);
            foreach (var range in key.Split('.'))
            {
                var word = key[range];
                next.Clear();
                var any = false;
                for (var i = 0; i < _words.Length; i++)
                {
                    steps++;
                    if (!current[i])
                    {
                        continue;
                    }

                    switch (_kinds[i])
                    {
                        case WordKind.Hash:
                            next[i] = any = true; // '#' takes this word and may take more
                            break;
                        case WordKind.Star:
                            next[i + 1] = any = true;
                            break;
                        default:
                            if (word.SequenceEqual(_words[i]))
                            {
                                next[i + 1] = any = true;
                            }

                            break;
                    }
                }

                if (!any)
                {
                    return false;
                }

                CloseOverHash(next);
                var swap = current;
                current = next;
                next = swap;
            }

            return current[_words.Length];
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<bool>.Shared.Return(rented);
            }
        }
    }

    // Without '#', key word i meets pattern word i: one pass.
    private bool MatchesWordForWord(ReadOnlySpan<char> key, ref long steps)
    {
        var i = 0;
        foreach (var range in key.Split('.'))
        {
            steps++;
            if (i == _words.Length || (_kinds[i] == WordKind.Literal && !key[range].SequenceEqual(_words[i])))
            {
                return false;
            }

            i++;
        }

        return i == _words.Length;
    }

    // A '#' also matches zero words: reaching the position before it reaches the one after it.
    // Ascending order carries a run through; runs are collapsed at construction anyway.
    private void CloseOverHash(Span<bool> states)
    {
        for (var i = 0; i < _words.Length; i++)
        {
            if (states[i] && _kinds[i] == WordKind.Hash)
            {
                states[i + 1] = true;
            }
        }
    }
}
