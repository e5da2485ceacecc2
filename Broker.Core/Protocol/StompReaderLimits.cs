namespace Broker.Protocol;

/// <summary>Limits the frame reader enforces (STOMP 1.2 "Size Limits").</summary>
public sealed record StompReaderLimits
{
    /// <summary>Largest frame (command, headers and body), in bytes. Default 4 MiB.</summary>
    public int MaxFrameSize { get; init; } = 4 * 1024 * 1024;

    /// <summary>Most headers in one frame. Default 64.</summary>
    public int MaxHeaders { get; init; } = 64;

    /// <summary>Longest header line (name, colon and value, before unescaping), in bytes. Default 8 KiB.</summary>
    public int MaxHeaderLineLength { get; init; } = 8 * 1024;

    public static StompReaderLimits Default { get; } = new();
}
