namespace Broker.Application;

/// <summary>
/// A destination template such as <c>/app/chat/{room}</c> or <c>/app/orders.{id}/status</c>: segments split at
/// <c>/</c>, each literal or holding one <c>{name}</c> (with optional literal text around it). A value matches
/// one segment's non-empty text (never a <c>/</c>); literals compare ordinally (destinations are case-sensitive).
/// Parsed once at map time; matching allocates only the values.
/// </summary>
internal sealed class DestinationTemplate
{
    private readonly Segment[] _segments;

    private DestinationTemplate(string text, Segment[] segments, string[] names)
    {
        Text = text;
        _segments = segments;
        ParameterNames = names;
    }

    /// <summary>The full template, prefix included.</summary>
    public string Text { get; }

    /// <summary>The parameter names in order of appearance; <see cref="TryMatch"/> fills values in this order.</summary>
    public IReadOnlyList<string> ParameterNames { get; }

    /// <summary>
    /// Orders templates from the most to the least specific, so the first that matches is the best: segment by
    /// segment, a literal beats literal text around a parameter, which beats a bare parameter.
    /// </summary>
    public int CompareSpecificity(DestinationTemplate other)
    {
        for (var i = 0; i < Math.Min(_segments.Length, other._segments.Length); i++)
        {
            var order = other._segments[i].Rank.CompareTo(_segments[i].Rank);
            if (order != 0)
            {
                return order;
            }
        }

        return other._segments.Length.CompareTo(_segments.Length);
    }

    /// <summary>Parses <paramref name="text"/>; throws <see cref="ArgumentException"/> naming what is wrong.</summary>
    public static DestinationTemplate Parse(string text)
    {
        if (string.IsNullOrEmpty(text) || text[0] != '/')
        {
            throw new ArgumentException($"destination template '{text}' must start with '/'", nameof(text));
        }

        var parts = text[1..].Split('/');
        var segments = new Segment[parts.Length];
        var names = new List<string>();
        for (var i = 0; i < parts.Length; i++)
        {
            segments[i] = ParseSegment(text, parts[i], names);
        }

        return new DestinationTemplate(text, segments, [.. names]);
    }

    /// <summary>Matches <paramref name="destination"/>; on success <paramref name="values"/> holds one value per parameter.</summary>
    public bool TryMatch(string destination, out string[] values)
    {
        values = [];
        if (destination.Length == 0 || destination[0] != '/')
        {
            return false;
        }

        var rest = destination.AsSpan(1);
        var found = ParameterNames.Count == 0 ? null : new string[ParameterNames.Count];
        var next = 0;
        for (var i = 0; i < _segments.Length; i++)
        {
            var slash = rest.IndexOf('/');
            var last = i == _segments.Length - 1;
            if (last != (slash < 0))
            {
                return false;
            }

            var part = last ? rest : rest[..slash];
            ref readonly var segment = ref _segments[i];
            if (segment.Parameter is null)
            {
                if (!part.SequenceEqual(segment.Prefix))
                {
                    return false;
                }
            }
            else
            {
                if (part.Length <= segment.Prefix.Length + segment.Suffix.Length ||
                    !part.StartsWith(segment.Prefix, StringComparison.Ordinal) || !part.EndsWith(segment.Suffix, StringComparison.Ordinal))
                {
                    return false;
                }

                found![next++] = part[segment.Prefix.Length..^segment.Suffix.Length].ToString();
            }

            rest = last ? default : rest[(slash + 1)..];
        }

        values = found ?? [];
        return true;
    }

    public override string ToString() => Text;

    private static Segment ParseSegment(string template, string part, List<string> names)
    {
        var open = part.IndexOf('{');
        var close = part.IndexOf('}');
        if (open < 0 && close < 0)
        {
            return new Segment(part, "", null);
        }

        if (open < 0 || close < open || part.IndexOf('{', open + 1) >= 0 || part.IndexOf('}', close + 1) >= 0)
        {
            throw new ArgumentException($"destination template '{template}': segment '{part}' may hold one {{name}}", nameof(template));
        }

        var name = part[(open + 1)..close];
        if (name.Length == 0 || !name.All(c => char.IsLetterOrDigit(c) || c == '_'))
        {
            throw new ArgumentException($"destination template '{template}': '{{{name}}}' is not a parameter name (letters, digits, _)", nameof(template));
        }

        if (names.Contains(name, StringComparer.OrdinalIgnoreCase))
        {
            throw new ArgumentException($"destination template '{template}' names '{name}' twice", nameof(template));
        }

        names.Add(name);
        return new Segment(part[..open], part[(close + 1)..], name);
    }

    private readonly record struct Segment(string Prefix, string Suffix, string? Parameter)
    {
        // 2: literal; 1: parameter with literal text around it; 0: bare parameter.
        public int Rank => Parameter is null ? 2 : Prefix.Length + Suffix.Length > 0 ? 1 : 0;
    }
}
