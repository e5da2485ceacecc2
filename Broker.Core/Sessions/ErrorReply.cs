using Broker.Protocol;
using Broker.Resources;

namespace Broker.Sessions;

/// <summary>
/// What a client is told in an ERROR frame when handling its frame failed. A
/// <see cref="StompProtocolException"/> carries text written for the client (a protocol violation, a limit,
/// a broker's refusal), as does a <see cref="LimitExceededException"/> (the broker refused to hold more: a full
/// queue, the memory limit); every other exception is a failure inside the server (a broker, a store, a bug): it
/// is logged with its details and the client gets a fixed text, so an exception's message never reaches a client.
/// <see cref="Limit"/> names the limit exceeded, if one was (counted in <c>broker.limits.exceeded</c>).
/// </summary>
internal readonly record struct ErrorReply(string Message, string? Detail, string? Limit = null)
{
    public static ErrorReply Internal { get; } = new("internal error", null);

    /// <summary>A failure inside the server, not something the client did or asked for.</summary>
    public bool IsInternal => this == Internal;

    public static ErrorReply For(Exception exception) => exception switch
    {
        StompProtocolException protocol => new(protocol.Message, protocol.Limit is null ? null : Exceeded(protocol.Limit), protocol.Limit),
        LimitExceededException limit => new(limit.Message, Exceeded(limit.Limit), limit.Limit),
        _ => Internal,
    };

    private static string Exceeded(string limit) => $"The '{limit}' limit was exceeded.";
}
