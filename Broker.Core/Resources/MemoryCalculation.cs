namespace Broker.Resources;

/// <summary>What <c>Broker:MemoryLimit</c> is compared with (as RabbitMQ's <c>vm_memory_calculation_strategy</c>).</summary>
public enum MemoryCalculation
{
    /// <summary>
    /// The default: both what the broker holds for clients (the budget, counted at once) and the whole process's
    /// resident memory (its RSS, sampled 4 times a second); either at the limit flow-controls publishers.
    /// </summary>
    Process,

    /// <summary>
    /// Only what the broker holds for clients. For a broker embedded in an application whose own memory should not
    /// count against the broker's limit; the process then uses more than the limit (the runtime, GC slack, buffers).
    /// </summary>
    Budget,
}
