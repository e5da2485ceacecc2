namespace Broker.Benchmarks.Codec;

/// <summary>The frames the codec benchmarks read and write.</summary>
public enum FrameKind
{
    /// <summary>SEND with destination, content-type, receipt, content-length and a 128 B body.</summary>
    Send128,

    /// <summary>The same SEND with a 4 KiB body.</summary>
    Send4K,

    /// <summary>MESSAGE as the broker delivers it: destination, message-id, subscription, ack, content-type, content-length, 128 B body.</summary>
    Message128,
}
