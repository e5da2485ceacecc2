namespace Broker;

/// <summary>
/// Broker settings, bound from the <c>Broker</c> configuration section
/// (<c>Broker:MaxFrameSize</c>, environment <c>Broker__MaxFrameSize</c>, <c>--Broker:MaxFrameSize</c>).
/// Every limit is answered with an ERROR frame naming it, then a close.
/// </summary>
public sealed class StompBrokerOptions
{
    /// <summary>
    /// Anonymous clients (no login, or any login while <see cref="Users"/> is empty): <c>true</c> accepts them
    /// from anywhere, <c>false</c> refuses them; <c>null</c> (the default) accepts them from loopback only, and
    /// not at all once a user is configured. See <see cref="Hosting.AnonymousAccessPolicy"/>.
    /// </summary>
    public bool? AllowAnonymous { get; set; }

    /// <summary>
    /// Web page origins allowed to open a WebSocket: exact origins (<c>https://app.example.com</c>), patterns
    /// (<c>https://*.example.com</c>, <c>http://localhost:*</c>) or <c>*</c>. Requests without an <c>Origin</c>
    /// header and same-origin requests are always accepted; any other origin gets 403.
    /// </summary>
    public List<string> AllowedOrigins { get; set; } = [];

    /// <summary>
    /// Most STOMP connections (WebSocket and TCP together) the node holds (<c>max-connections</c>); 0 = no limit.
    /// Null (the default): the process's open-file limit less a reserve for the server's own files.
    /// </summary>
    public int? MaxConnections { get; set; }

    /// <summary>Most STOMP connections from one IP address (<c>max-connections-per-address</c>); 0 (the default) = no limit.</summary>
    public int MaxConnectionsPerAddress { get; set; }

    /// <summary>
    /// New STOMP connections one IP address (an IPv6 address by its /64) may open per second, sustained, once its
    /// <see cref="ConnectionBurstPerAddress"/> is used up (<c>max-connection-rate-per-address</c>); 0 = no limit.
    /// Default 100: a NAT of a thousand browsers reconnecting at once after a restart is back within about
    /// 10 s; a client reconnecting in a loop is held to this rate.
    /// </summary>
    public double MaxConnectionRatePerAddress { get; set; } = 100;

    /// <summary>
    /// Connections one address may open at once before <see cref="MaxConnectionRatePerAddress"/> applies. Default 100:
    /// what a burst costs the server (up to about 1 ms of CPU each for a client pushing a large CONNECT body)
    /// is what everyone else's sessions wait for while it lasts.
    /// </summary>
    public int ConnectionBurstPerAddress { get; set; } = 100;

    /// <summary>Addresses whose connection rate is remembered at once (least recently seen forgotten first). Default 10,000.</summary>
    public int MaxTrackedConnectionAddresses { get; set; } = 10_000;

    /// <summary>login → passcode. When non-empty, a presented login must match one of these.</summary>
    public Dictionary<string, string> Users { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Failed-login throttling (<c>Broker:LoginThrottling</c>).</summary>
    public Security.LoginThrottlingOptions LoginThrottling { get; set; } = new();

    /// <summary>Who may subscribe and send to which destination (<c>Broker:Authorization:Rules</c>).</summary>
    public Security.StompAuthorizationOptions Authorization { get; set; } = new();

    /// <summary>One compacting garbage collection once the broker has gone quiet after activity (<c>Broker:IdleCompaction</c>).</summary>
    public Resources.IdleCompactionOptions IdleCompaction { get; set; } = new();

    /// <summary>Largest frame, in bytes (limit name <c>max-frame-size</c>). Default 4 MiB.</summary>
    public int MaxFrameSize { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// Largest frame, in bytes, a connection may send before it is CONNECTED (limit name
    /// <c>max-frame-size-before-connect</c>), so that unauthenticated clients cannot make the server hold much. Default 64 KiB.
    /// </summary>
    public int MaxFrameSizeBeforeConnect { get; set; } = 64 * 1024;

    /// <summary>Most headers in a frame (<c>max-headers</c>).</summary>
    public int MaxHeaders { get; set; } = 64;

    /// <summary>Longest header line in bytes (<c>max-header-line-length</c>).</summary>
    public int MaxHeaderLineLength { get; set; } = 8 * 1024;

    /// <summary>Most subscriptions one connection may hold (<c>max-subscriptions</c>).</summary>
    public int MaxSubscriptionsPerConnection { get; set; } = 1024;

    /// <summary>Most frames (SEND/ACK/NACK) one transaction may hold (<c>max-transaction-size</c>).</summary>
    public int MaxTransactionSize { get; set; } = 1024;

    /// <summary>Most transactions open at once on a connection (<c>max-transactions</c>).</summary>
    public int MaxTransactionsPerConnection { get; set; } = 16;

    /// <summary>Bytes queued for a client but not yet written before it is a slow consumer (<c>max-pending-bytes</c>). Default 16 MiB.</summary>
    public long MaxPendingBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>Longest a write to a client may stall before it is a slow consumer (<c>send-timeout</c>).</summary>
    public TimeSpan SendTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a new connection has to send CONNECT (<c>connect-timeout</c>).</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The shortest heart-beat interval a client may ask for: the server sends heart-beats as often as the
    /// client's CONNECT asks, and expects them as often as it offers, down to this.
    /// </summary>
    public TimeSpan HeartbeatMinimum { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How often the server sends heart-beats when the client asks for none or for less than <see cref="HeartbeatMinimum"/>
    /// (CONNECTED's first heart-beat value then). 0 = never, whatever the client asks.
    /// </summary>
    public TimeSpan HeartbeatSend { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often the server wants the client's heart-beats when the client offers none or less than <see cref="HeartbeatMinimum"/>
    /// (CONNECTED's second heart-beat value then). 0 = never, whatever the client offers.
    /// </summary>
    public TimeSpan HeartbeatReceive { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How many receive intervals of silence are tolerated before the client is declared dead.</summary>
    public double HeartbeatTolerance { get; set; } = 2.0;

    /// <summary>Most ready messages one in-process queue holds (<c>max-queue-length</c>); beyond it <see cref="QueueOverflow"/> applies.</summary>
    public int MaxQueueLength { get; set; } = 100_000;

    /// <summary>Most bytes of ready messages one in-process queue holds (<c>max-queue-bytes</c>); 0 = no limit. Default 64 MiB.</summary>
    public long MaxQueueBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>
    /// What a full queue does with a SEND: <see cref="Resources.QueueOverflow.RejectPublish"/> (the default: ERROR naming the
    /// queue and the limit, no receipt) or <see cref="Resources.QueueOverflow.DropOldest"/> (counted in <c>broker.messages.dropped</c>).
    /// </summary>
    public Resources.QueueOverflow QueueOverflow { get; set; } = Resources.QueueOverflow.RejectPublish;

    /// <summary>
    /// The memory high watermark in bytes (<c>memory-limit</c>), held against what the broker holds for clients (queued
    /// messages, topic history, outboxes, open transactions, partly read frames) and, with <see cref="MemoryCalculation"/>
    /// <see cref="Resources.MemoryCalculation.Process"/> (the default), against the process's resident memory. When either
    /// reaches it, connections that SEND are not read from until both fall below <see cref="MemoryLowWatermark"/>. Null or
    /// 0 (the default): 40 % of the memory available to the process (the machine's, or the container's limit).
    /// </summary>
    public long? MemoryLimit { get; set; }

    /// <summary>
    /// What <see cref="MemoryLimit"/> is compared with: <see cref="Resources.MemoryCalculation.Process"/> (the default: what
    /// the broker holds for clients and the process's resident memory, sampled 4 times a second) or
    /// <see cref="Resources.MemoryCalculation.Budget"/> (only what it holds for clients).
    /// </summary>
    public Resources.MemoryCalculation MemoryCalculation { get; set; } = Resources.MemoryCalculation.Process;

    /// <summary>The low watermark, as a fraction of <see cref="MemoryLimit"/> (more than 0, at most 1): where flow-controlled publishers resume.</summary>
    public double MemoryLowWatermark { get; set; } = 0.8;

    /// <summary>Longest a publisher may be flow-controlled before it gets an ERROR (<c>memory-limit</c>) and is closed; 0 = wait as long as it takes.</summary>
    public TimeSpan FlowControlTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Most unacknowledged messages one client-ack subscription may hold before its connection is closed as a slow consumer (<c>max-unacked</c>).</summary>
    public int MaxUnackedPerSubscription { get; set; } = 10_000;

    /// <summary>Messages each topic keeps for resumed subscriptions to replay.</summary>
    public int HistorySize { get; set; } = 1000;

    /// <summary>How long a topic keeps a message for replay.</summary>
    public TimeSpan HistoryMaxAge { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Longest destination a SEND or SUBSCRIBE may name, in UTF-8 bytes (<c>max-destination-length</c>). Default 512.</summary>
    public int MaxDestinationLength { get; set; } = 512;

    /// <summary>Most dot-separated words in a <c>/topic/</c> key or pattern (<c>max-destination-words</c>). Default 32.</summary>
    public int MaxDestinationWords { get; set; } = 32;

    /// <summary>
    /// Most live destinations (topics and queues together) the node holds (<c>max-destinations</c>): a SEND or SUBSCRIBE
    /// that would make one more gets an ERROR. A SEND to a topic nobody subscribes to makes none. 0 = no limit. Default 100,000.
    /// </summary>
    public int MaxDestinations { get; set; } = 100_000;

    /// <summary>Most bytes (bodies and headers) of the messages each topic keeps for replay. Default 1 MiB.</summary>
    public long HistoryMaxBytes { get; set; } = 1024 * 1024;

    /// <summary>
    /// Most bytes (bodies and headers) of the frames held in one connection's open transactions together
    /// (<c>max-transaction-bytes</c>). Default 4 MiB.
    /// </summary>
    public long MaxTransactionBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// How long a queue with no consumer and no activity (no SEND, no consumer coming or going) lives; then it is
    /// deleted with its messages (counted in <c>broker.messages.dropped</c> and logged). 0 = never. Default 24 h.
    /// </summary>
    public TimeSpan QueueExpiry { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// How many times a queue message may be redelivered (after a NACK, or its consumer leaving without acknowledging
    /// it) before it moves to the dead-letter queue <c>/queue/&lt;name&gt;</c> + <see cref="DeadLetterSuffix"/>. 0 (the default) = no limit.
    /// </summary>
    public int MaxRedeliveries { get; set; }

    /// <summary>Appended to a queue's name to name its dead-letter queue. Default <c>.dlq</c>.</summary>
    public string DeadLetterSuffix { get; set; } = ".dlq";

    /// <summary>The default number of unacknowledged messages in client ack modes (0 = unlimited); a SUBSCRIBE may set <c>prefetch-count</c>.</summary>
    public int DefaultPrefetch { get; set; }

    /// <summary>The name sent in CONNECTED's <c>server</c> header.</summary>
    public string ServerName { get; set; } = "Broker/1.0";
}
