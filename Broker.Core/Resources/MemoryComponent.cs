namespace Broker.Resources;

/// <summary>What the memory budget counts: each a kind of thing the broker holds on behalf of clients.</summary>
public enum MemoryComponent
{
    /// <summary>Ready messages in in-process queues.</summary>
    Queues,

    /// <summary>Messages topics keep for replay.</summary>
    TopicHistory,

    /// <summary>Frames queued for connections' writer loops (MESSAGE, RECEIPT, ERROR, heart-beats).</summary>
    Outboxes,

    /// <summary>SEND frames held by open transactions.</summary>
    Transactions,

    /// <summary>Frames partly read, waiting for the rest of their bytes.</summary>
    PartialFrames,
}
