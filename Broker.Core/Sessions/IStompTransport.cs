using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Security.Claims;

namespace Broker.Sessions;

/// <summary>What a session reads frames from and writes frames to: a TCP connection, a WebSocket, or pipes in tests.</summary>
internal interface IStompTransport
{
    PipeReader Input { get; }

    /// <summary>Where the writer loop serialises frames; made visible to the peer by <see cref="FlushAsync"/>.</summary>
    IBufferWriter<byte> Output { get; }

    EndPoint? RemoteEndPoint { get; }

    /// <summary>The client's IP address; null when the transport has none.</summary>
    System.Net.IPAddress? RemoteAddress => null;

    /// <summary>The authenticated user of the transport (the WebSocket request's), if any.</summary>
    ClaimsPrincipal? User { get; }

    /// <summary>
    /// The session is CONNECTED: the transport may now buffer a whole frame of max-frame-size (before it, at most
    /// about max-frame-size-before-connect).
    /// </summary>
    void Connected()
    {
    }

    /// <summary>
    /// True when the transport itself reads no more than about max-frame-size-before-connect until <see cref="Connected"/>
    /// (the WebSocket pump); otherwise the session reads on while a CONNECT waits and bounds what arrives behind it.
    /// </summary>
    bool BoundsInputBeforeConnect => false;

    /// <summary>Sends what was written. <paramref name="binary"/>: some frame's body is not UTF-8. False when the peer is gone.</summary>
    ValueTask<bool> FlushAsync(bool binary, CancellationToken cancellationToken);

    /// <summary>Closes the connection after what was flushed.</summary>
    ValueTask CloseAsync();

    /// <summary>Drops the connection at once (a stalled peer).</summary>
    void Abort();
}

/// <summary>A transport over a pair of pipes: Kestrel's TCP connections and in-memory pipes in tests.</summary>
internal sealed class PipeTransport(PipeReader input, PipeWriter output, EndPoint? remoteEndPoint = null, Action? abort = null) : IStompTransport
{
    public PipeReader Input { get; } = input;

    public IBufferWriter<byte> Output => output;

    public EndPoint? RemoteEndPoint { get; } = remoteEndPoint;

    public IPAddress? RemoteAddress => (RemoteEndPoint as IPEndPoint)?.Address;

    public ClaimsPrincipal? User => null;

    public async ValueTask<bool> FlushAsync(bool binary, CancellationToken cancellationToken)
    {
        var result = await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        return !result.IsCompleted && !result.IsCanceled;
    }

    public async ValueTask CloseAsync()
    {
        await output.CompleteAsync().ConfigureAwait(false);
        await Input.CompleteAsync().ConfigureAwait(false);
    }

    public void Abort()
    {
        output.CancelPendingFlush();
        Input.CancelPendingRead();
        abort?.Invoke();
    }
}
