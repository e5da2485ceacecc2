namespace Broker.Application;

/// <summary>
/// Sees CONNECT, SUBSCRIBE, SEND and UNSUBSCRIBE frames before the broker or an application handler does (Spring's
/// <c>ChannelInterceptor.preSend</c>), and can refuse them or add headers. Register any number as singletons
/// (<c>services.AddSingleton&lt;IStompInterceptor, MyInterceptor&gt;()</c>); they run in the order registered, each
/// seeing the headers the earlier ones added, until one refuses.
/// <para>
/// Called on the session's read loop, synchronously: nothing else of that connection is read meanwhile, so keep it
/// quick (no I/O; decide from the frame, the principal and what is in memory). A CONNECT is seen once the client is
/// authenticated, before its session is set up; a SEND or SUBSCRIBE once its destination is known to be valid.
/// </para>
/// </summary>
public interface IStompInterceptor
{
    /// <summary>Returns <see cref="StompInterceptResult.Continue"/>, or <see cref="StompInterceptResult.Reject"/> to answer the frame with an ERROR (which closes the connection).</summary>
    StompInterceptResult OnInbound(StompInboundFrame frame);
}

/// <summary>What an <see cref="IStompInterceptor"/> decided.</summary>
public readonly record struct StompInterceptResult
{
    private StompInterceptResult(string? rejection) => Rejection = rejection;

    /// <summary>The frame goes on (with any headers added).</summary>
    public static StompInterceptResult Continue => default;

    /// <summary>The reason given to the client in the ERROR frame's <c>message</c>; null to go on.</summary>
    public string? Rejection { get; }

    /// <summary>Refuses the frame: the client gets an ERROR whose <c>message</c> is <paramref name="message"/>, and the connection closes.</summary>
    public static StompInterceptResult Reject(string message)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(message);
        return new StompInterceptResult(message);
    }
}
