using Broker.Protocol;
using Broker.Tests.Durability;
using Broker.Tests.EndToEnd;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Cluster;

/// <summary>Two Broker.Server processes on one Redis, for sessions and the cluster, under key prefixes of their own.</summary>
internal sealed class ServerNodes : IAsyncDisposable
{
    private readonly List<StompTestClient> _clients = [];
    private readonly string _redis;
    private readonly string _prefix;

    private ServerNodes(ServerProcess a, ServerProcess b, string redis, string prefix)
    {
        A = a;
        B = b;
        _redis = redis;
        _prefix = prefix;
    }

    public ServerProcess A { get; }

    public ServerProcess B { get; }

    public static async Task<ServerNodes> StartAsync(RedisServer redis, params string[] extra)
    {
        var prefix = $"broker-{Unique()}:";
        string[] args =
        [
            "--Broker:Sessions:Store=redis", $"--Broker:Sessions:Redis={redis.Configuration}", $"--Broker:Sessions:RedisKeyPrefix={prefix}",
            "--Broker:Cluster:Kind=redis", $"--Broker:Cluster:KeyPrefix={prefix}cluster:", "--Broker:Cluster:QueueRedeliveryTimeout=00:00:02",
            .. extra,
        ];
        var a = await ServerProcess.StartAsync(args);
        ServerProcess? b = null;
        try
        {
            b = await ServerProcess.StartAsync(args);
            foreach (var node in new[] { a, b })
            {
                await node.WaitForOutputAsync(l => l.Contains("Redis cluster: connected to", StringComparison.Ordinal), 1, "the node connected to Redis");
                await node.WaitForOutputAsync(l => l.Contains("takes control requests", StringComparison.Ordinal), 1, "the node listens for control requests");
            }

            return new ServerNodes(a, b, redis.Configuration, prefix);
        }
        catch
        {
            if (b is not null)
            {
                await b.DisposeAsync();
            }

            await a.DisposeAsync();
            throw;
        }
    }

    /// <summary>A TCP connection to <paramref name="node"/>, closed with the nodes.</summary>
    public async Task<StompTestClient> OpenAsync(ServerProcess node)
    {
        var client = await StompTestClient.ConnectTcpAsync(node.TcpPort);
        _clients.Add(client);
        return client;
    }

    public async Task<StompTestClient> ConnectAsync(ServerProcess node)
    {
        var client = await OpenAsync(node);
        var connected = await client.ConnectAsync();
        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
        return client;
    }

    /// <summary>Connects as <paramref name="login"/> (password the same), resuming <paramref name="token"/> if given.</summary>
    public async Task<(StompTestClient Client, ReceivedFrame Connected)> ConnectAsync(ServerProcess node, string login, string? token = null)
    {
        var client = await OpenAsync(node);
        var connected = await client.ConnectAsync(login: login, passcode: login, sessionToken: token);
        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
        return (client, connected);
    }

    public async Task WaitSessionStoredAsync(string token)
    {
        using var store = new Broker.Durability.RedisSessionStore(new Broker.Durability.RedisSessionStoreOptions { Configuration = _redis, KeyPrefix = _prefix });
        await Eventually.That(async () => (await store.FindByTokenHashAsync(Broker.Sessions.StompSession.HashToken(token)))?.Subscriptions.Count == 1, "the session reached Redis", Eventually.Relaxed);
    }

    /// <summary>Waits until a node has recorded in Redis that the subscription was written to (every 100 ms by default).</summary>
    public async Task WaitWrittenPositionAsync(string sessionId, string subscriptionId)
    {
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(_redis);
        await Eventually.That(async () => (await redis.GetDatabase().HashGetAsync($"{_prefix}cluster:w:{{{sessionId}}}", subscriptionId)).HasValue, "the written position reached Redis", Eventually.Relaxed);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients)
        {
            await client.DisposeAsync();
        }

        await A.DisposeAsync();
        await B.DisposeAsync();
    }
}
