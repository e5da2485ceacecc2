namespace Broker.Sessions;

/// <summary>Why a session closed: recorded once, by whatever closed it first; in the close log line and the <c>broker.connections.closed</c> metric's <c>reason</c> tag.</summary>
internal enum CloseReason
{
    /// <summary>The client sent DISCONNECT: the session ends for good.</summary>
    Disconnect = 1,

    /// <summary>An ERROR frame: the client broke the protocol or a limit, or the broker failed its request.</summary>
    Error,

    /// <summary>No CONNECT in time (<c>connect-timeout</c>), or no heart-beat from a client that promised them.</summary>
    Timeout,

    /// <summary>The client did not keep up (<c>max-pending-bytes</c>, <c>max-unacked</c>, <c>send-timeout</c>).</summary>
    SlowConsumer,

    /// <summary>The same durable session resumed on another connection.</summary>
    TakenOver,

    /// <summary>The connection went away without DISCONNECT.</summary>
    PeerGone,

    /// <summary>The server is stopping.</summary>
    ServerShutdown,

    /// <summary>The application closed it (<see cref="StompSession.Close(string)"/>, <see cref="StompSessionRegistry.CloseUser"/>).</summary>
    Application,

    /// <summary>The application or an operator ended it for good (<c>IStompSessionControl</c>, <c>max-sessions-per-user</c>): as after DISCONNECT, nothing is kept to resume.</summary>
    Terminated,
}
