namespace Broker.Protocol;

/// <summary>
/// Input that breaks the STOMP protocol or a configured limit. The session answers it with an
/// ERROR frame whose <c>message</c> is <see cref="Exception.Message"/>, then closes.
/// </summary>
public sealed class StompProtocolException : Exception
{
    public StompProtocolException(string message, string? limit = null) : base(message) => Limit = limit;

    public StompProtocolException() : base("protocol error") { }

    public StompProtocolException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>The name of the limit that was exceeded (as in configuration), or null for other violations.</summary>
    public string? Limit { get; }

    internal static StompProtocolException LimitExceeded(string limit, long value, long max) =>
        new($"limit exceeded: {limit} ({value} > {max})", limit);
}
