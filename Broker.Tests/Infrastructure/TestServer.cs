using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Broker.Durability;
using Microsoft.Extensions.Logging;

namespace Broker.Tests;

/// <summary>
/// The broker embedded in an ASP.NET app, as a user embeds it (AddStompBroker, MapStomp, UseStomp),
/// listening on 127.0.0.1 with ports picked by the OS.
/// </summary>
internal sealed class TestServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestServer(WebApplication app, int httpPort, int tcpPort)
    {
        _app = app;
        WebSocketUri = new Uri($"ws://127.0.0.1:{httpPort}/ws");
        HttpUri = new Uri($"http://127.0.0.1:{httpPort}/");
        TcpPort = tcpPort;
    }

    public Uri WebSocketUri { get; }

    public Uri HttpUri { get; }

    public int TcpPort { get; }

    public IServiceProvider Services => _app.Services;

    public static async Task<TestServer> StartAsync(Action<StompBrokerOptions>? configure = null, Action<IServiceCollection>? services = null, Action<WebApplication>? app = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        // Durable sessions on, as in the product (the executable defaults to SQLite; tests keep them in memory).
        builder.Services.AddStompBroker(o =>
        {
            o.Users["guest"] = "guest";
            o.AllowAnonymous = true;
            configure?.Invoke(o);
        }).AddInMemorySessionStore();
        services?.Invoke(builder.Services);

        ListenOptions? http = null;
        ListenOptions? tcp = null;
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0, l => http = l);
            k.Listen(IPAddress.Loopback, 0, l => tcp = l.UseStomp());
        });

        var web = builder.Build();
        app?.Invoke(web);
        web.MapStomp("/ws");
        await web.StartAsync();
        return new TestServer(web, ((IPEndPoint)http!.EndPoint).Port, ((IPEndPoint)tcp!.EndPoint).Port);
    }

    /// <summary>Waits until the server has noticed a dropped connection and let its session go.</summary>
    public Task WaitSessionGoneAsync(string sessionId)
    {
        var registry = Services.GetRequiredService<Broker.Sessions.StompSessionRegistry>();
        return Eventually.That(() => registry.Find(sessionId) is null, $"session {sessionId} released");
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}
