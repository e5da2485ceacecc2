using System.Net;
using Broker.Durability;
using Broker.Sessions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Broker.Benchmarks.Durability;

/// <summary>
/// The broker embedded as a user embeds it (AddStompBroker + a session store + <c>UseStomp()</c>),
/// raw STOMP over TCP on 127.0.0.1 with a port picked by the OS. Owns what the store needs: a temp
/// SQLite file, a private redis-server.
/// </summary>
internal sealed class BenchServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Broker.Tests.Durability.RedisServer? _redis;
    private readonly string? _tempDirectory;

    private BenchServer(WebApplication app, int tcpPort, BenchStore store, Broker.Tests.Durability.RedisServer? redis, string? tempDirectory)
    {
        _app = app;
        TcpPort = tcpPort;
        Store = store;
        _redis = redis;
        _tempDirectory = tempDirectory;
    }

    public int TcpPort { get; }

    public BenchStore Store { get; }

    public IServiceProvider Services => _app.Services;

    public StompSessionRegistry Registry => Services.GetRequiredService<StompSessionRegistry>();

    /// <summary>The write-behind queue (null when durable sessions are off).</summary>
    public SessionPersistence? Persistence => Store == BenchStore.None ? null : Services.GetRequiredService<SessionPersistence>();

    public ISessionStore? SessionStore => Services.GetService<ISessionStore>();

    public static async Task<BenchServer> StartAsync(BenchStore store, Action<StompBrokerOptions>? configure = null)
    {
        Broker.Tests.Durability.RedisServer? redis = null;
        string? temp = null;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        var broker = builder.Services.AddStompBroker(o =>
        {
            o.Users["guest"] = "guest";
            o.AllowAnonymous = true;
            configure?.Invoke(o);
        });
        switch (store)
        {
            case BenchStore.Memory:
                broker.AddInMemorySessionStore();
                break;
            case BenchStore.Sqlite:
                temp = Directory.CreateTempSubdirectory("broker-bench-").FullName;
                var path = Path.Combine(temp, "sessions.db");
                broker.AddSqliteSessionStore(o => o.Path = path);
                break;
            case BenchStore.Redis:
                redis = await Broker.Tests.Durability.RedisServer.StartAsync();
                var configuration = redis.Configuration;
                broker.AddRedisSessionStore(o => o.Configuration = configuration);
                break;
        }

        ListenOptions? tcp = null;
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => tcp = l.UseStomp()));
        var app = builder.Build();
        await app.StartAsync();
        return new BenchServer(app, ((IPEndPoint)tcp!.EndPoint).Port, store, redis, temp);
    }

    public async ValueTask DisposeAsync()
    {
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15)))
        {
            await _app.StopAsync(cts.Token);
        }

        await _app.DisposeAsync();
        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }

        if (_tempDirectory is not null)
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(_tempDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
