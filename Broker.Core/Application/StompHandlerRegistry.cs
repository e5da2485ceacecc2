namespace Broker.Application;

/// <summary>
/// The mapped application handlers (a DI singleton): templates ordered most specific first, in copy-on-write arrays
/// read without a lock. Mapping happens at start-up; matching happens per SEND and SUBSCRIBE to an application destination.
/// </summary>
internal sealed class StompHandlerRegistry
{
    private readonly Lock _gate = new();
    private StompEndpoint[] _messages = [];
    private StompEndpoint[] _subscriptions = [];

    public void Add(StompEndpoint endpoint)
    {
        lock (_gate)
        {
            var current = endpoint.Kind == StompHandlerKind.Message ? _messages : _subscriptions;
            foreach (var existing in current)
            {
                if (existing.Template.CompareSpecificity(endpoint.Template) == 0 && SameShape(existing.Template, endpoint.Template))
                {
                    throw new InvalidOperationException($"'{endpoint.Template}' is mapped twice (as '{existing.Template}' before)");
                }
            }

            // Stable: among equally specific templates, the first mapped wins.
            StompEndpoint[] next = [.. current, endpoint];
            var ordered = next.Select((e, i) => (e, i)).OrderBy(p => p.e, Comparer<StompEndpoint>.Create((a, b) => a.Template.CompareSpecificity(b.Template))).ThenBy(p => p.i).Select(p => p.e).ToArray();
            if (endpoint.Kind == StompHandlerKind.Message)
            {
                Volatile.Write(ref _messages, ordered);
            }
            else
            {
                Volatile.Write(ref _subscriptions, ordered);
            }
        }
    }

    /// <summary>The best handler of <paramref name="kind"/> for <paramref name="destination"/> and its template values, or null.</summary>
    public StompEndpoint? Match(StompHandlerKind kind, string destination, out string[] values)
    {
        foreach (var endpoint in Volatile.Read(ref kind == StompHandlerKind.Message ? ref _messages : ref _subscriptions))
        {
            if (endpoint.Template.TryMatch(destination, out values))
            {
                return endpoint;
            }
        }

        values = [];
        return null;
    }

    // "/chat/{room}" and "/chat/{id}" accept the same destinations.
    private static bool SameShape(DestinationTemplate a, DestinationTemplate b) => Shape(a) == Shape(b);

    private static string Shape(DestinationTemplate template)
    {
        var text = template.Text;
        foreach (var name in template.ParameterNames)
        {
            text = text.Replace("{" + name + "}", "{}", StringComparison.Ordinal);
        }

        return text;
    }
}
