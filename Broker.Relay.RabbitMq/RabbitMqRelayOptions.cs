namespace Broker.Relay.RabbitMq;

/// <summary>Settings of the RabbitMQ relay (<c>Broker:Relay:RabbitMq:*</c>).</summary>
public sealed class RabbitMqRelayOptions
{
    /// <summary>The AMQP URI of the RabbitMQ node (user, password and vhost included). Default <c>amqp://guest:guest@127.0.0.1:5672/</c>.</summary>
    public string Uri { get; set; } = "amqp://guest:guest@127.0.0.1:5672/";

    /// <summary>AMQP connections this node keeps open (subscriptions are spread over them). Default 2.</summary>
    public int Connections { get; set; } = 2;

    /// <summary>Publisher-confirm channels per connection; publishes are spread over them. Default 2.</summary>
    public int PublishChannelsPerConnection { get; set; } = 2;

    /// <summary>
    /// Publishes awaiting RabbitMQ's confirmation per publish channel. A SEND without a receipt does not wait
    /// for its confirmation, so a client can have many in flight; past this number, reading its next frame
    /// waits (back-pressure). Default 512.
    /// </summary>
    public int MaxUnconfirmedPerChannel { get; set; } = 512;

    /// <summary>
    /// Unacknowledged deliveries a subscription may hold (AMQP <c>basic.qos</c>) when its SUBSCRIBE sets no
    /// <c>prefetch-count</c>. Auto-ack deliveries count until they are written to the client. Default 256.
    /// </summary>
    public int DefaultPrefetch { get; set; } = 256;

    /// <summary>
    /// Durable subscriptions per connection that consume on a channel of their own (so a resume on another node gets
    /// their unacknowledged deliveries back first, in order); past it they share the connection's consumer channel.
    /// Bounded by RabbitMQ's <c>channel_max</c> (2047 by default). Default 1000.
    /// </summary>
    public int MaxDurableChannelsPerConnection { get; set; } = 1000;

    /// <summary>Publish messages as persistent, so durable queues keep them through a RabbitMQ restart. Default true.</summary>
    public bool PersistentMessages { get; set; } = true;

    /// <summary>
    /// How long the queue of a durable session's subscription outlives its last consumer (<c>x-expires</c>);
    /// null (the default) takes the durable-session TTL (<c>Broker:Sessions:Ttl</c>).
    /// </summary>
    public TimeSpan? DurableQueueExpiry { get; set; }

    /// <summary>Prefix of the queues the relay names for subscriptions; <c>/queue/</c> destinations may not use it. Default <c>stomp-relay.</c>.</summary>
    public string QueuePrefix { get; set; } = "stomp-relay.";

    /// <summary>The first wait before reconnecting; it doubles on each failure up to <see cref="MaxReconnectDelay"/>. Default 100 ms.</summary>
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest wait between reconnection attempts. Default 5 s.</summary>
    public TimeSpan MaxReconnectDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a SEND waits for a connection (and retries a publish cut off by a lost one) before the
    /// client gets an ERROR saying the broker is unavailable. Default 5 s.
    /// </summary>
    public TimeSpan UnavailableWait { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Most bytes of headers (names and values, UTF-8) a SEND may carry to RabbitMQ (<c>max-relay-header-bytes</c>): they
    /// travel in one AMQP content-header frame, which must fit RabbitMQ's <c>frame_max</c> (131,072 bytes by default),
    /// or RabbitMQ would close the whole connection. Default 64 KiB.
    /// </summary>
    public int MaxHeaderBytes { get; set; } = 64 * 1024;

    /// <summary>AMQP heart-beat interval: how soon a silent, dead connection is noticed. Default 10 s.</summary>
    public TimeSpan Heartbeat { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest wait for one AMQP request (declare, bind, consume). Default 10 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);
}
