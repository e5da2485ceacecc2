using Broker.Routing;

namespace Broker.Sessions;

/// <summary>
/// Spring's user destinations. A session subscribes to <c>/user/queue/&lt;name&gt;</c> and is given its
/// own queue, <c>/queue/&lt;name&gt;-user&lt;session id&gt;</c>; a SEND to
/// <c>/user/&lt;login&gt;/queue/&lt;name&gt;</c> goes to that queue of every session of the user.
/// The per-session names are reserved: clients cannot name them directly.
/// </summary>
internal static class UserDestinations
{
    private const string Prefix = Destinations.UserPrefix;
    private const string QueuePart = "queue/";
    private const string SessionSuffix = "-user";

    /// <summary>The length of a session id (<see cref="StompSessionServices.NewSessionId"/>: 12 random bytes in hex).</summary>
    private const int SessionIdLength = 24;

    private static readonly System.Buffers.SearchValues<char> s_hexDigits = System.Buffers.SearchValues.Create("0123456789abcdef");

    /// <summary>Checks a SUBSCRIBE destination; an error message, or null when it is valid (or not a user destination).</summary>
    public static string? CheckSubscribe(string destination)
    {
        if (IsReserved(destination))
        {
            return ReservedMessage(destination);
        }

        if (!Destinations.IsUser(destination))
        {
            return null;
        }

        if (destination.AsSpan().ContainsAny('\r', '\n'))
        {
            return LineBreakMessage(destination);
        }

        var rest = destination.AsSpan(Prefix.Length);
        if (rest.StartsWith(QueuePart, StringComparison.Ordinal))
        {
            return rest.Length == QueuePart.Length ? $"user destination '{destination}' has an empty queue name" : null;
        }

        return $"cannot subscribe to '{destination}': subscribe to /user/queue/<name> (your own sessions' destination)";
    }

    /// <summary>Checks a SEND destination; an error message, or null when it is valid (or not a user destination).</summary>
    public static string? CheckSend(string destination)
    {
        if (IsReserved(destination))
        {
            return ReservedMessage(destination);
        }

        if (!Destinations.IsUser(destination) || TryParseSend(destination, out _, out _))
        {
            return null;
        }

        if (destination.AsSpan().ContainsAny('\r', '\n'))
        {
            return LineBreakMessage(destination);
        }

        return destination.StartsWith(Prefix + QueuePart, StringComparison.Ordinal)
            ? $"cannot send to '{destination}': a SEND must name the user, as in /user/<login>/queue/<name>"
            : $"cannot send to '{destination}': user destinations are /user/<login>/queue/<name>";
    }

    /// <summary>Splits <c>/user/&lt;login&gt;/queue/&lt;name&gt;</c>; the login is the single path segment after <c>/user/</c>.</summary>
    public static bool TryParseSend(string destination, out string login, out string queueName)
    {
        login = queueName = "";
        if (!Destinations.IsUser(destination))
        {
            return false;
        }

        var rest = destination.AsSpan(Prefix.Length);
        if (rest.ContainsAny('\r', '\n'))
        {
            return false;
        }

        var slash = rest.IndexOf('/');
        if (slash <= 0)
        {
            return false;
        }

        var after = rest[(slash + 1)..];
        if (!after.StartsWith(QueuePart, StringComparison.Ordinal) || after.Length == QueuePart.Length)
        {
            return false;
        }

        login = rest[..slash].ToString();
        queueName = after[QueuePart.Length..].ToString();
        return true;
    }

    /// <summary>The destination a subscriber sees for messages sent to <paramref name="queueName"/>: <c>/user/queue/&lt;name&gt;</c>.</summary>
    public static string SubscribeForm(string queueName) => Prefix + QueuePart + queueName;

    /// <summary>The broker destination behind <c>/user/queue/&lt;name&gt;</c> for one session.</summary>
    public static string SessionQueue(string queueName, string sessionId) => Destinations.Queue($"{queueName}{SessionSuffix}{sessionId}");

    /// <summary>The broker destination behind a (valid) subscribed user destination for one session.</summary>
    public static string ResolveSubscribe(string userDestination, string sessionId) =>
        SessionQueue(userDestination[(Prefix.Length + QueuePart.Length)..], sessionId);

    /// <summary>True for <c>/queue/&lt;name&gt;-user&lt;session id&gt;</c>: the queue behind one session's <c>/user/queue/</c> subscription.</summary>
    public static bool IsSessionQueue(string destination) => IsReserved(destination);

    // "/queue/<name>-user<24 hex digits>": a session's own queue, reachable only through /user/.
    private static bool IsReserved(string destination)
    {
        if (!Destinations.IsQueue(destination) || destination.Length < Destinations.QueuePrefix.Length + SessionSuffix.Length + SessionIdLength)
        {
            return false;
        }

        var end = destination.AsSpan(destination.Length - SessionSuffix.Length - SessionIdLength);
        return end.StartsWith(SessionSuffix, StringComparison.Ordinal) && !end[SessionSuffix.Length..].ContainsAnyExcept(s_hexDigits);
    }

    // A line break would end the destination line early in a STOMP 1.0 MESSAGE (1.0 has no escaping).
    private static string LineBreakMessage(string destination) =>
        $"user destination '{destination.ReplaceLineEndings(" ")}' contains a line break";

    private static string ReservedMessage(string destination) =>
        $"destination '{destination}' is reserved for user destinations: use /user/queue/<name> or /user/<login>/queue/<name>";
}
