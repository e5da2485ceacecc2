using Broker.Cluster;
using Broker.Durability;
using Broker.Protocol;
using Broker.Tests.Durability;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Tests.Cluster;

/// <summary>
/// Broker nodes in this process, each an ASP.NET app as a user embeds it (<see cref="TestServer"/>), sharing
/// one Redis for the cluster and one for sessions (the same server unless a test restarts the cluster's),
/// under key prefixes of their own; or, with <c>withCluster: false</c>, only the Redis session store (each node its own
/// in-process broker, the control plane over the store's connection).
/// </summary>
internal sealed class TestCluster : IAsyncDisposable
{
    private readonly List<TestServer> _nodes = [];
    private readonly List<StompTestClient> _clients = [];
    private readonly Action<StompBrokerOptions>? _broker;
    private readonly Action<RedisClusterOptions>? _cluster;
    private Action<IServiceCollection>? _services;
    private bool _withCluster = true;

    private TestCluster(RedisServer redis, RedisServer sessions, Action<StompBrokerOptions>? broker, Action<RedisClusterOptions>? cluster)
    {
        Redis = redis;
        Sessions = sessions;
        _broker = broker;
        _cluster = cluster;
        Prefix = "c" + Guid.NewGuid().ToString("N")[..10] + ":";
    }

    public RedisServer Redis { get; }

    public RedisServer Sessions { get; }

    /// <summary>The cluster's key prefix (the sessions' is this plus <c>s:</c>).</summary>
    public string Prefix { get; }

    public IReadOnlyList<TestServer> Nodes => _nodes;

    /// <summary>Every node's log lines (Information and above), as "category: message".</summary>
    public LogCapture Logs { get; } = new();

    public TestServer A => _nodes[0];

    public TestServer B => _nodes[1];

    public static async Task<TestCluster> StartAsync(RedisServer redis, int nodes = 2, Action<StompBrokerOptions>? broker = null,
        Action<RedisClusterOptions>? cluster = null, RedisServer? sessions = null, Action<IServiceCollection>? services = null, bool withCluster = true)
    {
        var testCluster = new TestCluster(redis, sessions ?? redis, broker, cluster) { _services = services, _withCluster = withCluster };
        try
        {
            for (var i = 0; i < nodes; i++)
            {
                await testCluster.StartNodeAsync();
            }
        }
        catch
        {
            await testCluster.DisposeAsync();
            throw;
        }

        return testCluster;
    }

    /// <summary>
    /// One more node (connected to Redis when this returns); <paramref name="configure"/> changes its services after the
    /// session store and cluster are registered (this node only).
    /// </summary>
    public async Task<TestServer> StartNodeAsync(Action<IServiceCollection>? configure = null)
    {
        var node = await TestServer.StartAsync(o =>
        {
            o.Users["bob"] = "bob";
            o.Users["alice"] = "alice";
            _broker?.Invoke(o);
        }, services =>
        {
            _services?.Invoke(services);
            var broker = services.AddSingleton<Microsoft.Extensions.Logging.ILoggerProvider>(Logs).AddStompBroker()
                .AddRedisSessionStore(o =>
                {
                    o.Configuration = Sessions.Configuration;
                    o.KeyPrefix = Prefix + "s:";
                });
            if (_withCluster)
            {
                broker.AddRedisCluster(o =>
                {
                    o.Redis = Redis.Configuration;
                    o.KeyPrefix = Prefix;
                    o.QueueRedeliveryTimeout = TimeSpan.FromSeconds(2);
                    _cluster?.Invoke(o);
                });
            }

            configure?.Invoke(services);
        });
        _nodes.Add(node);
        if (_withCluster && !await Broker(node).WaitConnectedAsync(TimeSpan.FromSeconds(20)))
        {
            throw new TimeoutException("a node did not connect to Redis");
        }

        // Other nodes' control requests reach it once it listens on its channel.
        await Eventually.That(() => node.Services.GetRequiredService<RedisClusterControl>().IsEnabled, "the node takes control requests", Eventually.Relaxed);

        return node;
    }

    public static RedisClusterBroker Broker(TestServer node) => node.Services.GetRequiredService<RedisClusterBroker>();

    /// <summary>A client connected over TCP to <paramref name="node"/> as <paramref name="login"/> (passcode = login).</summary>
    public async Task<StompTestClient> ConnectAsync(TestServer node, string login = "guest") => (await ConnectWithAsync(node, login)).Client;

    public async Task<(StompTestClient Client, ReceivedFrame Connected)> ConnectWithAsync(TestServer node, string login = "guest", string? token = null)
    {
        var client = await StompTestClient.ConnectTcpAsync(node.TcpPort);
        _clients.Add(client);
        var connected = await client.ConnectAsync(login: login, passcode: login, sessionToken: token);
        if (connected.Command != StompCommand.Connected)
        {
            throw new InvalidOperationException("CONNECT failed: " + connected);
        }

        return (client, connected);
    }

    /// <summary>
    /// A client of <paramref name="node"/> over in-memory pipes: unlike a socket, what the node wrote before the
    /// client drops is still read by it, so a test sees exactly what the server delivered.
    /// </summary>
    public async Task<(StompTestClient Client, ReceivedFrame Connected)> ConnectOverPipesAsync(TestServer node, string login = "guest", string? token = null)
    {
        var toServer = new System.IO.Pipelines.Pipe();
        var toClient = new System.IO.Pipelines.Pipe();
        var session = new Broker.Sessions.StompSession(new Broker.Sessions.PipeTransport(toServer.Reader, toClient.Writer),
            node.Services.GetRequiredService<Broker.Sessions.StompSessionServices>());
        // Closed when the node stops, as its socket connections are.
        _ = session.RunAsync(node.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().ApplicationStopping);
        var client = StompTestClient.OverPipes(toClient.Reader, toServer.Writer);
        _clients.Add(client);
        var connected = await client.ConnectAsync(login: login, passcode: login, sessionToken: token);
        if (connected.Command != StompCommand.Connected)
        {
            throw new InvalidOperationException("CONNECT failed: " + connected);
        }

        return (client, connected);
    }

    /// <summary>Stops a node gracefully (its sessions close and save their state, as on SIGTERM).</summary>
    public async Task StopNodeAsync(TestServer node)
    {
        _nodes.Remove(node);
        await node.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients)
        {
            await client.DisposeAsync();
        }

        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }
    }
}

/// <summary>Keeps log lines in memory, for tests that assert what an operator would read.</summary>
internal sealed class LogCapture : Microsoft.Extensions.Logging.ILoggerProvider
{
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture capture, string category) : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => logLevel >= Microsoft.Extensions.Logging.LogLevel.Information;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                lock (capture._lines)
                {
                    capture._lines.Add($"{category}: {formatter(state, exception)}");
                }
            }
        }
    }
}
