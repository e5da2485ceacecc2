using Microsoft.Extensions.Logging;

namespace Broker.Resources;

internal static partial class Log
{
    [LoggerMessage(400, LogLevel.Warning, "Memory held for clients ({Used} bytes) reached the limit ({Limit} bytes): publishers are flow-controlled until it falls below the low watermark ({Components})")]
    public static partial void AboveHighWatermark(ILogger logger, long used, long limit, string components);

    [LoggerMessage(401, LogLevel.Information, "Memory held for clients ({Used} bytes) fell below the low watermark ({LowWatermark} bytes): {Blocked} flow-controlled publishers resume")]
    public static partial void BelowLowWatermark(ILogger logger, long used, long lowWatermark, int blocked);

    [LoggerMessage(402, LogLevel.Information, "Memory above its limit: {Bytes} bytes of topic replay history given up (resumed subscriptions are told recovered:false)")]
    public static partial void Reclaimed(ILogger logger, long bytes);
}
