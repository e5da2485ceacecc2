using System.Collections.Concurrent;
using System.Numerics;

namespace Broker.Routing;

/// <summary>
/// Wildcard topic patterns indexed by word, as RabbitMQ's topic exchange keeps its bindings: one node per
/// pattern prefix, literal edges in one table keyed by (node, word), and a node's '*' and '#' children in
/// fields. A key is matched by walking the trie with the key's words instead of testing every pattern.
/// </summary>
/// <remarks>
/// <para>
/// The walk keeps the set of nodes the words read so far can be at, deduplicated, and advances it once per
/// word (RabbitMQ walks depth first, which is exponential in '#'s): a node reached through '#' stays in the
/// set (it takes the word), a node's '*' child and its child for the word join it, and a node's '#' child
/// joins whatever joins (zero words). The set never holds more nodes than the trie, so a key of n words
/// costs O(n × nodes) at most, and usually a handful of lookups per word.
/// </para>
/// <para>
/// Readers never lock: nodes, edges and binding lists are published with volatile writes and a concurrent
/// dictionary, and a binding list only grows in place (a removal leaves a hole) or is replaced by a compacted
/// copy. Writers take one lock, and adding or removing a binding costs O(pattern words), amortized.
/// A walk that runs while a binding is added or removed may or may not see it; every other binding it sees.
/// </para>
/// </remarks>
internal sealed class TopicTrie<T>
    where T : class
{
    private readonly Lock _writeLock = new();
    private readonly ConcurrentDictionary<Edge, Node> _edges = new(EdgeComparer.Instance);
    private readonly ConcurrentDictionary<Edge, Node>.AlternateLookup<EdgeProbe> _lookup;
    private readonly Node _root = new(0, null, "");
    // Node ids index the walk's dedupe bitset; freed ids are reused so the bitset stays as small as the trie.
    private readonly Stack<int> _freeIds = new();
    private int _nextId = 1;
    private int _nodeCount = 1;
    private int _count;

    public TopicTrie()
    {
        _lookup = _edges.GetAlternateLookup<EdgeProbe>();
    }

    /// <summary>Bindings in the trie.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Nodes in the trie, the root included: the bound on the walk's set of nodes per word.</summary>
    public int NodeCount => Volatile.Read(ref _nodeCount);

    /// <summary>Adds <paramref name="value"/> under <paramref name="pattern"/>; dispose of the binding by <see cref="Remove"/>.</summary>
    public Binding Add(string pattern, T value)
    {
        var binding = new Binding(value);
        lock (_writeLock)
        {
            var node = _root;
            foreach (var range in pattern.AsSpan().Split('.'))
            {
                var word = pattern.AsSpan(range);
                if (node.IsHash && word is "#")
                {
                    continue; // '#.#' matches exactly what '#' does: one node
                }

                node = GetOrAddChild(node, word);
            }

            node.Append(binding);
            Volatile.Write(ref _count, _count + 1);
        }

        return binding;
    }

    /// <summary>Removes <paramref name="binding"/> (once; again is a no-op) and the nodes it alone kept.</summary>
    public void Remove(Binding binding)
    {
        lock (_writeLock)
        {
            if (binding.Node is not { } node)
            {
                return;
            }

            node.Detach(binding);
            Volatile.Write(ref _count, _count - 1);
            while (node.Parent is { } parent && node.IsEmpty)
            {
                RemoveChild(parent, node);
                node = parent;
            }
        }
    }

    /// <summary>
    /// Calls <paramref name="onMatch"/> once for every binding whose pattern matches <paramref name="key"/>.
    /// Returns the work done: nodes visited, summed over the key's words (the bound tests assert on).
    /// </summary>
    public long Match<TState>(ReadOnlySpan<char> key, TState state, Action<T, TState> onMatch)
    {
        if (Volatile.Read(ref _count) == 0)
        {
            return 0;
        }

        var walk = Walk.Rent();
        walk.Add(_root);
        walk.Advance();
        foreach (var range in key.Split('.'))
        {
            var word = key[range];
            int? hash = null; // computed once per word, and only if some node has literal children
            foreach (var node in walk.Current)
            {
                walk.Steps++;
                if (node.IsHash)
                {
                    walk.Add(node);
                }

                walk.Add(Volatile.Read(ref node.Star));
                if (Volatile.Read(ref node.LiteralChildren) > 0
                    && _lookup.TryGetValue(new EdgeProbe(node, word, hash ??= string.GetHashCode(word)), out var child))
                {
                    walk.Add(child);
                }
            }

            walk.Advance();
            if (walk.Current.IsEmpty)
            {
                break;
            }
        }

        foreach (var node in walk.Current)
        {
            if (Volatile.Read(ref node.Bindings) is { } bindings)
            {
                var items = bindings.Items;
                var count = Math.Min(Volatile.Read(ref bindings.Count), items.Length);
                for (var i = 0; i < count; i++)
                {
                    if (Volatile.Read(ref items[i]) is { } binding)
                    {
                        onMatch(binding.Value, state);
                    }
                }
            }
        }

        var steps = walk.Steps;
        walk.Return();
        return steps;
    }

    private Node GetOrAddChild(Node parent, ReadOnlySpan<char> word)
    {
        switch (word)
        {
            case "*":
                if (parent.Star is null)
                {
                    Volatile.Write(ref parent.Star, NewNode(parent, "*"));
                }

                return parent.Star;
            case "#":
                if (parent.Hash is null)
                {
                    Volatile.Write(ref parent.Hash, NewNode(parent, "#"));
                }

                return parent.Hash;
            default:
                if (_lookup.TryGetValue(new EdgeProbe(parent, word, string.GetHashCode(word)), out var existing))
                {
                    return existing;
                }

                var child = NewNode(parent, word.ToString());
                _edges[new Edge(parent, child.Word)] = child;
                Volatile.Write(ref parent.LiteralChildren, parent.LiteralChildren + 1);
                return child;
        }
    }

    private Node NewNode(Node parent, string word)
    {
        var id = _freeIds.Count > 0 ? _freeIds.Pop() : _nextId++;
        parent.Children++;
        Volatile.Write(ref _nodeCount, _nodeCount + 1);
        return new Node(id, parent, word);
    }

    private void RemoveChild(Node parent, Node child)
    {
        switch (child.Word)
        {
            case "*":
                Volatile.Write(ref parent.Star, null);
                break;
            case "#":
                Volatile.Write(ref parent.Hash, null);
                break;
            default:
                _edges.TryRemove(new Edge(parent, child.Word), out _);
                Volatile.Write(ref parent.LiteralChildren, parent.LiteralChildren - 1);
                break;
        }

        // A walk still holding the old node may meet a new node with its id in the same step and take one
        // for the other: harmless, as the old node has nothing left under it and the new one only has
        // bindings added after that walk began.
        parent.Children--;
        _freeIds.Push(child.Id);
        Volatile.Write(ref _nodeCount, _nodeCount - 1);
    }

    /// <summary>One value under one pattern: the handle that removes it.</summary>
    internal sealed class Binding(T value)
    {
        public T Value { get; } = value;

        /// <summary>The node this binding sits at, null once removed (written under the trie's lock).</summary>
        internal Node? Node { get; set; }

        /// <summary>This binding's index in its node's list (written under the trie's lock).</summary>
        internal int Slot { get; set; } = -1;
    }

    /// <summary>A pattern prefix. Fields read by walks are written with volatile writes under the trie's lock.</summary>
    internal sealed class Node(int id, Node? parent, string word)
    {
        public Node? Star;
        public Node? Hash;
        public int LiteralChildren;
        public BindingList? Bindings;

        public int Id { get; } = id;

        public Node? Parent { get; } = parent;

        /// <summary>The word on the edge from the parent: a literal, "*" or "#".</summary>
        public string Word { get; } = word;

        /// <summary>Reached through '#': takes any number of words and stays where it is.</summary>
        public bool IsHash { get; } = word == "#" && parent is not null;

        /// <summary>Children of any kind (writer only).</summary>
        public int Children { get; set; }

        public bool IsEmpty => Children == 0 && Bindings is null;

        public void Append(Binding binding)
        {
            var list = Bindings;
            if (list is null || list.Count == list.Items.Length)
            {
                list = Compact(list, extra: 1);
            }

            var slot = list.Count;
            list.Items[slot] = binding;
            list.Live++;
            binding.Node = this;
            binding.Slot = slot;
            Volatile.Write(ref list.Count, slot + 1);
        }

        public void Detach(Binding binding)
        {
            var list = Bindings!;
            Volatile.Write(ref list.Items[binding.Slot], null);
            list.Live--;
            binding.Node = null;
            binding.Slot = -1;
            if (list.Live == 0)
            {
                Volatile.Write(ref Bindings, null);
            }
            else if (list.Items.Length > 4 && list.Live < list.Count / 2)
            {
                // Holes outnumber bindings: copy the live ones. Each copy follows at least Live/2 removals.
                Compact(list, extra: 0);
            }
        }

        // A new list with the live bindings of the old one packed at the front and room for twice as many
        // (doubling: each copy follows as many appends as it moved). Walks on the old list carry on unharmed.
        private BindingList Compact(BindingList? old, int extra)
        {
            var live = (old?.Live ?? 0) + extra;
            var list = new BindingList(new Binding?[Math.Max(2, live * 2)]);
            if (old is not null)
            {
                for (var i = 0; i < old.Count; i++)
                {
                    if (old.Items[i] is { } binding)
                    {
                        binding.Slot = list.Count;
                        list.Items[list.Count++] = binding;
                        list.Live++;
                    }
                }
            }

            Volatile.Write(ref Bindings, list);
            return list;
        }
    }

    /// <summary>
    /// The bindings at one node: filled in place from the front (a walk reads <see cref="Count"/>, then the slots
    /// below it), holes where bindings were removed.
    /// </summary>
    internal sealed class BindingList(Binding?[] items)
    {
        public readonly Binding?[] Items = items;
        public int Count;
        public int Live;
    }

    private readonly record struct Edge(Node Parent, string Word);

    private readonly ref struct EdgeProbe(Node parent, ReadOnlySpan<char> word, int wordHash)
    {
        public Node Parent { get; } = parent;

        public ReadOnlySpan<char> Word { get; } = word;

        public int WordHash { get; } = wordHash;
    }

    // Hashes (parent id, ordinal word hash); the probe carries the word's hash, computed once per key word.
    private sealed class EdgeComparer : IEqualityComparer<Edge>, IAlternateEqualityComparer<EdgeProbe, Edge>
    {
        public static readonly EdgeComparer Instance = new();

        public bool Equals(Edge x, Edge y) => ReferenceEquals(x.Parent, y.Parent) && string.Equals(x.Word, y.Word, StringComparison.Ordinal);

        public int GetHashCode(Edge obj) => Combine(obj.Parent.Id, string.GetHashCode(obj.Word.AsSpan()));

        public bool Equals(EdgeProbe alternate, Edge other) => ReferenceEquals(alternate.Parent, other.Parent) && alternate.Word.SequenceEqual(other.Word);

        public int GetHashCode(EdgeProbe alternate) => Combine(alternate.Parent.Id, alternate.WordHash);

        public Edge Create(EdgeProbe alternate) => new(alternate.Parent, alternate.Word.ToString());

        private static int Combine(int id, int wordHash) => (int)BitOperations.RotateLeft((uint)wordHash, 5) ^ (id * -1640531535);
    }

    /// <summary>
    /// A walk's two sets of nodes (this word's and the next's) and the bitset, by node id, that keeps the next
    /// set free of duplicates. One per thread, reused; a walk started from inside another (a delivery that
    /// publishes) gets its own.
    /// </summary>
    private sealed class Walk
    {
        [ThreadStatic]
        private static Walk? t_cached;

        private Node[] _current = new Node[8];
        private int _currentCount;
        private Node[] _next = new Node[8];
        private int _nextCount;
        private ulong[] _marks = new ulong[4];

        public long Steps { get; set; }

        public ReadOnlySpan<Node> Current => _current.AsSpan(0, _currentCount);

        public static Walk Rent()
        {
            var walk = t_cached ?? new Walk();
            t_cached = null;
            walk.Steps = 0;
            return walk;
        }

        public void Return()
        {
            Array.Clear(_current, 0, _currentCount);
            _currentCount = 0;
            t_cached = this;
        }

        /// <summary>Adds <paramref name="node"/> to the next set, with the run of '#' children it reaches on zero words.</summary>
        public void Add(Node? node)
        {
            for (; node is not null; node = Volatile.Read(ref node.Hash))
            {
                Steps++;
                var id = node.Id;
                if ((id >> 6) >= _marks.Length)
                {
                    Array.Resize(ref _marks, Math.Max(_marks.Length * 2, (id >> 6) + 1));
                }

                ref var marks = ref _marks[id >> 6];
                var bit = 1UL << id;
                if ((marks & bit) != 0)
                {
                    return; // already in, and so is the run of '#'s after it
                }

                marks |= bit;
                if (_nextCount == _next.Length)
                {
                    Array.Resize(ref _next, _next.Length * 2);
                }

                _next[_nextCount++] = node;
            }
        }

        /// <summary>The next set becomes the current one; the bitset is cleared for the set after it.</summary>
        public void Advance()
        {
            Array.Clear(_current, 0, _currentCount);
            (_current, _next) = (_next, _current);
            _currentCount = _nextCount;
            _nextCount = 0;
            foreach (var node in Current)
            {
                _marks[node.Id >> 6] &= ~(1UL << node.Id);
            }
        }
    }
}
