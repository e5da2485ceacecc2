namespace Broker.Resources;

/// <summary>What a queue does with a SEND when it is full (<c>max-queue-length</c> or <c>max-queue-bytes</c>).</summary>
public enum QueueOverflow
{
    /// <summary>The SEND is refused with an ERROR naming the queue and the limit; its receipt is never sent. No one can push another client's jobs out.</summary>
    RejectPublish,

    /// <summary>The oldest ready messages are dropped (counted in <c>broker.messages.dropped</c>) to make room, as RabbitMQ's <c>drop-head</c>.</summary>
    DropOldest,
}
