using Broker.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Sessions;

/// <summary>What every session shares: options, broker, authenticator, metrics, logging, the live-session registry, the keep-alive monitor and the memory budget.</summary>
internal sealed class StompSessionServices(
    IOptions<StompBrokerOptions> options,
    IMessageBroker broker,
    IStompAuthenticator authenticator,
    BrokerMetrics metrics,
    StompSessionRegistry registry,
    ILoggerFactory loggerFactory,
    KeepAliveMonitor keepAlive,
    Resources.MemoryBudget memory,
    Application.StompApplication application,
    Durability.SessionPersistence? persistence = null)
{
    private UserDestinationRouter? _userRouter;
    private global::Broker.Cluster.ClusterSessions? _clusterSessions;

    private static long s_messageIds;
    private readonly string _nodePrefix = Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.Next()));

    public StompBrokerOptions Options { get; } = options.Value;

    public IMessageBroker Broker { get; } = broker;

    public IStompAuthenticator Authenticator { get; } = authenticator;

    public Hosting.AnonymousAccessPolicy AnonymousAccess { get; } = new(options.Value);

    /// <summary>Who may subscribe and send where (Security/DestinationAuthorization).</summary>
    public Security.DestinationAuthorization Authorization { get; init; } = Security.DestinationAuthorization.Open;

    public BrokerMetrics Metrics { get; } = metrics;

    public StompSessionRegistry Registry { get; } = registry;

    /// <summary>The clock and timer of every session: heart-beats, timeouts, the durable-session touch.</summary>
    public KeepAliveMonitor KeepAlive { get; } = keepAlive;

    /// <summary>The memory budget: what sessions hold (outboxes, transactions, partial frames) and flow control.</summary>
    public Resources.MemoryBudget Memory { get; } = memory;

    /// <summary>Marked whenever a session reads or writes a frame: what tells the idle compaction the broker is quiet.</summary>
    public Resources.BrokerActivity Activity { get; init; } = new();

    /// <summary>Durable-session writes; null when durable sessions are off.</summary>
    public Durability.SessionPersistence? Persistence { get; } = persistence;

    /// <summary>The application API: /app/ handlers, interceptors, session events, the per-user session limit.</summary>
    public Application.StompApplication Application { get; } = application;

    /// <summary>Delivery to user destinations (a session's SEND, the application's messenger).</summary>
    public UserDestinationRouter UserRouter => _userRouter ??= new UserDestinationRouter(this);

    /// <summary>The cluster's control plane (another node's sessions, the away directory); local-only without a cluster.</summary>
    public global::Broker.Cluster.IClusterControl Cluster { get; init; } = global::Broker.Cluster.LocalClusterControl.Instance;

    /// <summary>Session control across nodes: ending, describing and taking over sessions another node holds.</summary>
    public global::Broker.Cluster.ClusterSessions ClusterSessions => _clusterSessions ??= new(this);

    /// <summary>This process's name in session records and the user registry.</summary>
    public string NodeId { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4))}";

    public ILogger Logger { get; } = loggerFactory.CreateLogger("Broker.Sessions.StompSession");

    public Protocol.StompReaderLimits ReaderLimits { get; } = new()
    {
        MaxFrameSize = options.Value.MaxFrameSize,
        MaxFrameSizeBeforeConnect = options.Value.MaxFrameSizeBeforeConnect,
        MaxHeaders = options.Value.MaxHeaders,
        MaxHeaderLineLength = options.Value.MaxHeaderLineLength,
    };

    public string NextMessageId() => string.Create(null, stackalloc char[32], $"{_nodePrefix}-{Interlocked.Increment(ref s_messageIds)}");

    public static string NewSessionId() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(12));
}
