namespace Broker.Sessions;

/// <summary>Where a session is in its life; it only moves forward.</summary>
internal enum SessionState
{
    /// <summary>Waiting for CONNECT, or handling it (authentication, a resume) until CONNECTED is queued.</summary>
    Connecting,

    /// <summary>CONNECTED was queued: frames are handled.</summary>
    Connected,

    /// <summary>Closing (see <see cref="CloseReason"/>): no more frames are handled; queued output drains.</summary>
    Closing,

    /// <summary>The connection is closed and the session let go.</summary>
    Closed,
}
