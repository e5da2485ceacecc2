using Broker.Protocol;

namespace Broker.Sessions;

/// <summary>
/// What a client is told in an ERROR frame when handling its frame failed. A
/// <see cref="StompProtocolException"/> carries text written for the client (a protocol violation, a limit,
/// a broker's refusal); every other exception is a failure inside the server (a broker, a store, a bug): it
/// is logged with its details and the client gets a fixed text, so an exception's message never reaches a client.
/// </summary>
internal readonly record struct ErrorReply(string Message, string? Detail)
{
    public static ErrorReply Internal { get; } = new("internal error", null);

    public static ErrorReply For(Exception exception) => exception is StompProtocolException protocol
        ? new(protocol.Message, protocol.Limit is null ? null : $"The '{protocol.Limit}' limit was exceeded.")
        : Internal;
}
