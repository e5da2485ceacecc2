namespace Broker.Protocol;

/// <summary>Limits the frame reader enforces (STOMP 1.2 "Size Limits").</summary>
public sealed record StompReaderLimits
{
    /// <summary>The name of <see cref="MaxFrameSize"/> in configuration and in ERROR frames.</summary>
    public const string MaxFrameSizeName = "max-frame-size";

    /// <summary>The name of <see cref="MaxFrameSizeBeforeConnect"/> in configuration and in ERROR frames.</summary>
    public const string MaxFrameSizeBeforeConnectName = "max-frame-size-before-connect";

    /// <summary>The name of <see cref="MaxHeaders"/> in configuration and in ERROR frames.</summary>
    public const string MaxHeadersName = "max-headers";

    /// <summary>The name of <see cref="MaxHeaderLineLength"/> in configuration and in ERROR frames.</summary>
    public const string MaxHeaderLineLengthName = "max-header-line-length";

    /// <summary>Largest frame (command, headers and body), in bytes. Default 4 MiB.</summary>
    public int MaxFrameSize { get; init; } = 4 * 1024 * 1024;

    /// <summary>
    /// Largest frame until <see cref="StompFrameReader.Connected"/> is called, in bytes (when smaller than
    /// <see cref="MaxFrameSize"/>). Null (the default): only <see cref="MaxFrameSize"/> applies, as for a
    /// client reading a server; the broker sets it from <c>Broker:MaxFrameSizeBeforeConnect</c>.
    /// </summary>
    public int? MaxFrameSizeBeforeConnect { get; init; }

    /// <summary>Most headers in one frame. Default 64.</summary>
    public int MaxHeaders { get; init; } = 64;

    /// <summary>Longest header line (name, colon and value, before unescaping), in bytes. Default 8 KiB.</summary>
    public int MaxHeaderLineLength { get; init; } = 8 * 1024;

    public static StompReaderLimits Default { get; } = new();
}
