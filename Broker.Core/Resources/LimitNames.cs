namespace Broker.Resources;

/// <summary>
/// The names of the limits on what the broker holds for clients, as ERROR frames, the
/// <c>broker.limits.exceeded</c> metric's <c>limit</c> tag and the README carry them.
/// </summary>
public static class LimitNames
{
    /// <summary>Ready messages one queue holds (<see cref="StompBrokerOptions.MaxQueueLength"/>).</summary>
    public const string MaxQueueLength = "max-queue-length";

    /// <summary>Bytes of ready messages one queue holds (<see cref="StompBrokerOptions.MaxQueueBytes"/>).</summary>
    public const string MaxQueueBytes = "max-queue-bytes";

    /// <summary>The memory budget: a publisher flow-controlled longer than <see cref="StompBrokerOptions.FlowControlTimeout"/>.</summary>
    public const string MemoryLimit = "memory-limit";
}
