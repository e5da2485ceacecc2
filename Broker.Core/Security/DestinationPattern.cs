using Broker.Routing;

namespace Broker.Security;

/// <summary>What one word of a <see cref="DestinationPattern"/> is.</summary>
internal enum PatternWordKind : byte
{
    /// <summary>This exact word (a <c>*</c> or <c>#</c> inside a longer word is literal).</summary>
    Literal,

    /// <summary><c>*</c>: exactly one word.</summary>
    Star,

    /// <summary><c>#</c>: zero or more words.</summary>
    Hash,

    /// <summary>One or more words. Never written by users: a subscription's topic <c>*</c> becomes this (see <see cref="DestinationPattern.ForSubscription"/>).</summary>
    Plus,
}

internal readonly record struct PatternWord(PatternWordKind Kind, string Text = "");

/// <summary>
/// A destination pattern, compiled to a small automaton.
/// <para>
/// Words: a destination is split into words at every <c>.</c> and <c>/</c>, and which separator stands
/// between two words matters (<c>/user/bob/#</c> does not match <c>/user/bob.smith/queue/x</c>).
/// <c>*</c> is exactly one word, <c>#</c> zero or more words with any separators between them, as in a
/// RabbitMQ topic exchange. When <c>#</c> matches no word it takes the separator after it with it (the one
/// before it when it is last): <c>/topic/#.eu</c> matches <c>/topic/eu</c>, <c>/topic/a.#</c> matches
/// <c>/topic/a</c>, <c>a.#/b</c> matches <c>a.b</c>. Consecutive <c>#</c> words are one <c>#</c>.
/// </para>
/// <para>
/// Three questions, each a walk over the automata (no backtracking, no recursion):
/// <see cref="Matches"/> (a concrete destination, O(words × states)), <see cref="Overlaps"/> (could two
/// patterns match a common destination: reachability in the product automaton, O(n × m)) and
/// <see cref="Covers"/> (does every destination one pattern matches match the other: the product of the
/// covered pattern with the subsets of the covering one, bounded by <see cref="MaxCoverSteps"/>; rule
/// patterns are a few words, so in practice this is O(n × m) too).
/// </para>
/// </summary>
internal sealed class DestinationPattern
{
    /// <summary>Most words in a configured rule's pattern (limit name <c>max-rule-pattern-words</c>): three automaton states per word must fit a 64-bit set.</summary>
    public const int MaxWords = 20;

    /// <summary>Most (state, state set) pairs <see cref="Covers"/> visits; beyond it the answer is "not covered", which refuses (the safe side).</summary>
    public const int MaxCoverSteps = 4096;

    private readonly Edge[][] _edges;
    private readonly int _accept;

    // Per state, the states reachable from it through ε edges (itself included); only when the states fit 64 bits.
    private readonly ulong[]? _closure;

    private DestinationPattern(string text, PatternWord[] words, char[] gaps)
    {
        Text = text;
        (words, gaps) = CollapseHashes(words, gaps);
        Words = words;
        Gaps = gaps;
        var n = words.Length;
        var states = (3 * n) + 1;
        _accept = 3 * n;
        var edges = new List<Edge>[states];
        for (var s = 0; s < states; s++)
        {
            edges[s] = [];
        }

        // States: B(i) before word i, A(i) after word i, M(i) between two words a # or Plus has matched.
        for (var i = 0; i < n; i++)
        {
            var word = words[i];
            switch (word.Kind)
            {
                case PatternWordKind.Literal:
                    edges[B(i)].Add(new Edge(LabelKind.Word, A(i), word.Text));
                    break;
                case PatternWordKind.Star:
                    edges[B(i)].Add(new Edge(LabelKind.AnyWord, A(i)));
                    break;
                default:
                    edges[B(i)].Add(new Edge(LabelKind.AnyWord, A(i)));
                    edges[A(i)].Add(new Edge(LabelKind.AnyGap, M(i)));
                    edges[M(i)].Add(new Edge(LabelKind.AnyWord, A(i)));
                    if (word.Kind == PatternWordKind.Hash)
                    {
                        // Zero words: skip the word and the separator after it, or before it when it is last.
                        // (A lone '#' has no zero: every destination has at least one word, if only an empty one.)
                        if (i < n - 1)
                        {
                            edges[B(i)].Add(new Edge(LabelKind.Epsilon, B(i + 1)));
                        }
                        else if (n > 1)
                        {
                            edges[A(i - 1)].Add(new Edge(LabelKind.Epsilon, _accept));
                        }
                    }

                    break;
            }

            if (i < n - 1)
            {
                edges[A(i)].Add(new Edge(LabelKind.Gap, B(i + 1), Gap: gaps[i]));
            }
        }

        edges[A(n - 1)].Add(new Edge(LabelKind.Epsilon, _accept));
        _edges = Array.ConvertAll(edges, e => e.ToArray());
        if (states <= 64)
        {
            _closure = new ulong[states];
            for (var s = 0; s < states; s++)
            {
                _closure[s] = Closure(s);
            }
        }

        int B(int i) => i;
        int A(int i) => n + i;
        int M(int i) => (2 * n) + i;
    }

    /// <summary>The pattern as written (or, for a subscription, the destination).</summary>
    public string Text { get; }

    public PatternWord[] Words { get; }

    /// <summary>The separator between word i and word i + 1.</summary>
    public char[] Gaps { get; }

    private const int Start = 0;

    /// <summary>A configured rule's pattern: <c>*</c> and <c>#</c> words are wildcards, every other word literal.</summary>
    public static DestinationPattern Parse(string pattern)
    {
        var (texts, gaps) = Split(pattern);
        var words = Array.ConvertAll(texts, t => t switch
        {
            "*" => new PatternWord(PatternWordKind.Star),
            "#" => new PatternWord(PatternWordKind.Hash),
            _ => new PatternWord(PatternWordKind.Literal, t),
        });
        return Build(pattern, words, gaps);
    }

    /// <summary>A pattern from words already classified (rule templates after <c>{login}</c> is put in).</summary>
    public static DestinationPattern FromWords(string text, PatternWord[] words, char[] gaps) => Build(text, words, gaps);

    /// <summary>Exactly this destination: every word literal.</summary>
    public static DestinationPattern Literal(string destination)
    {
        var (texts, gaps) = Split(destination);
        return new DestinationPattern(destination, Array.ConvertAll(texts, t => new PatternWord(PatternWordKind.Literal, t)), gaps);
    }

    /// <summary>Whether a SUBSCRIBE to <paramref name="destination"/> reaches more than one destination: a <c>/topic/</c> key with a <c>*</c> or <c>#</c> word.</summary>
    public static bool IsWildcardSubscription(string destination) =>
        destination.StartsWith(Destinations.TopicPrefix, StringComparison.Ordinal) &&
        Destinations.IsWildcard(destination.AsSpan(Destinations.TopicPrefix.Length));

    /// <summary>
    /// Every destination a SUBSCRIBE to <paramref name="destination"/> can receive from, as a pattern over
    /// rule words. The broker (in-process and RabbitMQ's topic exchange alike) splits a topic key at
    /// <c>.</c> only, so a key word may hold <c>/</c>: a topic <c>*</c> becomes one or more rule words
    /// (<see cref="PatternWordKind.Plus"/>), a <c>#</c> stays <c>#</c>, a literal word is split at <c>/</c>.
    /// The result matches at least every destination the subscription receives (property-tested against
    /// <see cref="TopicPattern"/>). Anything but a wildcard topic subscription receives its own destination only.
    /// </summary>
    public static DestinationPattern ForSubscription(string destination)
    {
        if (!IsWildcardSubscription(destination))
        {
            return Literal(destination);
        }

        var words = new List<PatternWord> { new(PatternWordKind.Literal, ""), new(PatternWordKind.Literal, "topic") };
        var gaps = new List<char> { '/', '/' };
        var key = destination.AsSpan(Destinations.TopicPrefix.Length);
        var first = true;
        foreach (var range in key.Split('.'))
        {
            if (!first)
            {
                gaps.Add('.');
            }

            first = false;
            var word = key[range];
            if (word is "*")
            {
                words.Add(new PatternWord(PatternWordKind.Plus));
            }
            else if (word is "#")
            {
                words.Add(new PatternWord(PatternWordKind.Hash));
            }
            else
            {
                var part = true;
                foreach (var segment in word.Split('/'))
                {
                    if (!part)
                    {
                        gaps.Add('/');
                    }

                    part = false;
                    words.Add(new PatternWord(PatternWordKind.Literal, word[segment].ToString()));
                }
            }
        }

        return new DestinationPattern(destination, [.. words], [.. gaps]);
    }

    /// <summary>Splits at every <c>.</c> and <c>/</c>: n words, n - 1 separators.</summary>
    public static (string[] Words, char[] Gaps) Split(string text)
    {
        var count = text.AsSpan().Count('.') + text.AsSpan().Count('/') + 1;
        var words = new string[count];
        var gaps = new char[count - 1];
        var start = 0;
        for (var i = 0; i < count - 1; i++)
        {
            var end = text.AsSpan(start).IndexOfAny('.', '/') + start;
            words[i] = text[start..end];
            gaps[i] = text[end];
            start = end + 1;
        }

        words[count - 1] = text[start..];
        return (words, gaps);
    }

    /// <summary>Whether the concrete destination matches (every word of it taken literally).</summary>
    public bool Matches(ReadOnlySpan<char> destination)
    {
        var closure = _closure ?? throw new InvalidOperationException($"pattern '{Text}' has too many words to match directly");
        var current = closure[Start];
        while (true)
        {
            var end = destination.IndexOfAny('.', '/');
            var word = end < 0 ? destination : destination[..end];
            current = StepWord(current, word);
            if (current == 0)
            {
                return false;
            }

            if (end < 0)
            {
                return (current & (1UL << _accept)) != 0;
            }

            current = StepGap(current, destination[end]);
            if (current == 0)
            {
                return false;
            }

            destination = destination[(end + 1)..];
        }
    }

    /// <summary>Whether some destination matches both patterns: reachability in the product automaton.</summary>
    public bool Overlaps(DestinationPattern other)
    {
        var width = other._edges.Length;
        var seen = new bool[_edges.Length * width];
        var pending = new Stack<(int Mine, int Theirs)>();
        Visit(Start, Start);
        while (pending.TryPop(out var pair))
        {
            if (pair.Mine == _accept && pair.Theirs == other._accept)
            {
                return true;
            }

            foreach (var mine in _edges[pair.Mine])
            {
                if (mine.Kind == LabelKind.Epsilon)
                {
                    Visit(mine.To, pair.Theirs);
                    continue;
                }

                foreach (var theirs in other._edges[pair.Theirs])
                {
                    if (theirs.Kind != LabelKind.Epsilon && Compatible(mine, theirs))
                    {
                        Visit(mine.To, theirs.To);
                    }
                }
            }

            foreach (var theirs in other._edges[pair.Theirs])
            {
                if (theirs.Kind == LabelKind.Epsilon)
                {
                    Visit(pair.Mine, theirs.To);
                }
            }
        }

        return false;

        void Visit(int mine, int theirs)
        {
            ref var visited = ref seen[(mine * width) + theirs];
            if (!visited)
            {
                visited = true;
                pending.Push((mine, theirs));
            }
        }
    }

    /// <summary>
    /// Whether every destination <paramref name="other"/> matches, this pattern matches too. Walks
    /// <paramref name="other"/>'s automaton with the set of this one's states each step can be in: a
    /// wildcard word of <paramref name="other"/> is read as a word no literal of this pattern has (if this
    /// pattern takes that one, it takes every word), a "any separator" step as both separators. Exact, up to
    /// <see cref="MaxCoverSteps"/>; past it, false.
    /// </summary>
    public bool Covers(DestinationPattern other)
    {
        if (_closure is null)
        {
            return false;
        }

        var seen = new HashSet<(int, ulong)>();
        var pending = new Stack<(int State, ulong Mine)>();
        var acceptBit = 1UL << _accept;
        if (!Visit(Start, _closure[Start]))
        {
            return false;
        }

        while (pending.TryPop(out var item))
        {
            if (item.State == other._accept && (item.Mine & acceptBit) == 0)
            {
                return false;
            }

            foreach (var edge in other._edges[item.State])
            {
                switch (edge.Kind)
                {
                    case LabelKind.Epsilon:
                        if (!Visit(edge.To, item.Mine))
                        {
                            return false;
                        }

                        break;
                    case LabelKind.AnyGap:
                        if (!Advance(edge.To, StepGap(item.Mine, '.')) || !Advance(edge.To, StepGap(item.Mine, '/')))
                        {
                            return false;
                        }

                        break;
                    case LabelKind.Gap:
                        if (!Advance(edge.To, StepGap(item.Mine, edge.Gap)))
                        {
                            return false;
                        }

                        break;
                    case LabelKind.Word:
                        if (!Advance(edge.To, StepWord(item.Mine, edge.Text)))
                        {
                            return false;
                        }

                        break;
                    default:
                        if (!Advance(edge.To, StepFreshWord(item.Mine)))
                        {
                            return false;
                        }

                        break;
                }
            }
        }

        return true;

        // Every state of a pattern's automaton can still reach its end: a step this pattern cannot follow is a
        // destination of the other that this one does not match.
        bool Advance(int state, ulong mine) => mine != 0 && Visit(state, mine);

        bool Visit(int state, ulong mine)
        {
            if (seen.Add((state, mine)))
            {
                if (seen.Count > MaxCoverSteps)
                {
                    return false;
                }

                pending.Push((state, mine));
            }

            return true;
        }
    }

    public override string ToString() => Text;

    private static DestinationPattern Build(string text, PatternWord[] words, char[] gaps)
    {
        var pattern = new DestinationPattern(text, words, gaps);
        if (pattern.Words.Length > MaxWords)
        {
            throw new FormatException($"destination pattern '{text}' has more than {MaxWords} words (limit max-rule-pattern-words)");
        }

        return pattern;
    }

    // "#" then "#" is one "#": keep the separator before the run and the one after it.
    private static (PatternWord[] Words, char[] Gaps) CollapseHashes(PatternWord[] words, char[] gaps)
    {
        if (words.Length == 0)
        {
            return ([new PatternWord(PatternWordKind.Literal, "")], []);
        }

        var keptWords = new List<PatternWord>(words.Length) { words[0] };
        var keptGaps = new List<char>(gaps.Length);
        for (var i = 1; i < words.Length; i++)
        {
            if (words[i].Kind == PatternWordKind.Hash && keptWords[^1].Kind == PatternWordKind.Hash)
            {
                continue;
            }

            keptGaps.Add(gaps[i - 1]);
            keptWords.Add(words[i]);
        }

        return keptWords.Count == words.Length ? (words, gaps) : ([.. keptWords], [.. keptGaps]);
    }

    private ulong Closure(int state)
    {
        var mask = 1UL << state;
        var pending = new Stack<int>();
        pending.Push(state);
        while (pending.TryPop(out var s))
        {
            foreach (var edge in _edges[s])
            {
                if (edge.Kind == LabelKind.Epsilon && (mask & (1UL << edge.To)) == 0)
                {
                    mask |= 1UL << edge.To;
                    pending.Push(edge.To);
                }
            }
        }

        return mask;
    }

    // The states this pattern can be in after reading, from any of states, the literal word.
    private ulong StepWord(ulong states, ReadOnlySpan<char> word)
    {
        var next = 0UL;
        foreach (var edge in EdgesOf(states))
        {
            if (edge.Kind == LabelKind.AnyWord || (edge.Kind == LabelKind.Word && word.SequenceEqual(edge.Text)))
            {
                next |= _closure![edge.To];
            }
        }

        return next;
    }

    // ... a word none of this pattern's literals is (what a wildcard of another pattern stands for).
    private ulong StepFreshWord(ulong states)
    {
        var next = 0UL;
        foreach (var edge in EdgesOf(states))
        {
            if (edge.Kind == LabelKind.AnyWord)
            {
                next |= _closure![edge.To];
            }
        }

        return next;
    }

    // ... the separator.
    private ulong StepGap(ulong states, char gap)
    {
        var next = 0UL;
        foreach (var edge in EdgesOf(states))
        {
            if (edge.Kind == LabelKind.AnyGap || (edge.Kind == LabelKind.Gap && edge.Gap == gap))
            {
                next |= _closure![edge.To];
            }
        }

        return next;
    }

    private EdgeEnumerator EdgesOf(ulong states) => new(_edges, states);

    // Can one symbol pass both edges? Words are unlimited, so any two word edges agree unless both are different literals.
    private static bool Compatible(Edge a, Edge b) => (a.Kind, b.Kind) switch
    {
        (LabelKind.Word, LabelKind.Word) => a.Text == b.Text,
        (LabelKind.Word or LabelKind.AnyWord, LabelKind.Word or LabelKind.AnyWord) => true,
        (LabelKind.Gap, LabelKind.Gap) => a.Gap == b.Gap,
        (LabelKind.Gap or LabelKind.AnyGap, LabelKind.Gap or LabelKind.AnyGap) => true,
        _ => false,
    };

    private enum LabelKind : byte
    {
        Epsilon,
        Word,
        AnyWord,
        Gap,
        AnyGap,
    }

    private readonly record struct Edge(LabelKind Kind, int To, string? Text = null, char Gap = '\0');

    // The edges leaving a set of states, without allocating.
    private struct EdgeEnumerator(Edge[][] edges, ulong states)
    {
        private ulong _states = states;
        private Edge[] _current = [];
        private int _index = -1;

        public readonly Edge Current => _current[_index];

        public readonly EdgeEnumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            while (++_index >= _current.Length)
            {
                if (_states == 0)
                {
                    return false;
                }

                var s = System.Numerics.BitOperations.TrailingZeroCount(_states);
                _states &= _states - 1;
                _current = edges[s];
                _index = -1;
            }

            return true;
        }
    }
}
