using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Broker.Durability;

namespace Broker.Tests.Hosting;

/// <summary>
/// The broker embedded as a user embeds it, on a chosen address, with exactly the options a test gives
/// (no users, anonymous policy left at its default unless the test sets it), optionally behind Kestrel's
/// own TLS (<c>UseHttps</c> then <c>UseStomp</c>), its log lines captured.
/// </summary>
internal sealed class HostingTestServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private HostingTestServer(WebApplication app, LogCapture logs, IPAddress address, int httpPort, int tcpPort, bool tls)
    {
        _app = app;
        Logs = logs;
        Address = address;
        var host = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
        WebSocketUri = new Uri($"{(tls ? "wss" : "ws")}://{host}:{httpPort}/ws");
        HttpUri = new Uri($"{(tls ? "https" : "http")}://{host}:{httpPort}/");
        TcpPort = tcpPort;
    }

    public IPAddress Address { get; }

    public Uri WebSocketUri { get; }

    public Uri HttpUri { get; }

    public int TcpPort { get; }

    public LogCapture Logs { get; }

    public IServiceProvider Services => _app.Services;

    public static async Task<HostingTestServer> StartAsync(
        Action<StompBrokerOptions>? configure = null,
        IPAddress? address = null,
        X509Certificate2? certificate = null,
        Action<IServiceCollection>? services = null)
    {
        address ??= IPAddress.Loopback;
        var logs = new LogCapture();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        // Durable sessions on, as in the product (kept in memory here).
        builder.Services.AddStompBroker(o => configure?.Invoke(o)).AddInMemorySessionStore();
        services?.Invoke(builder.Services);

        ListenOptions? http = null;
        ListenOptions? tcp = null;
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(address, 0, l =>
            {
                if (certificate is not null)
                {
                    l.UseHttps(certificate);
                }

                http = l;
            });
            k.Listen(address, 0, l =>
            {
                if (certificate is not null)
                {
                    l.UseHttps(certificate);
                }

                tcp = l.UseStomp();
            });
        });

        var web = builder.Build();
        web.MapStomp("/ws");
        web.MapGet("/", () => "page");
        await web.StartAsync();
        return new HostingTestServer(web, logs, address, ((IPEndPoint)http!.EndPoint).Port, ((IPEndPoint)tcp!.EndPoint).Port, certificate is not null);
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
        Logs.Dispose();
    }
}
