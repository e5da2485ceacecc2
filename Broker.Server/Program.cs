using System.Net;
using Broker;
using Broker.Durability;
using Broker.Health;
using Broker.Server;
using Microsoft.AspNetCore.HttpOverrides;
using Broker.Server.Admin;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

if (args is [HashPasscodeCommand.Name, ..]) { return HashPasscodeCommand.Run(args[1..]); }

var settings = new ServerSettings();
try
{
    var builder = WebApplication.CreateBuilder(args);
    builder.Configuration.GetSection(ServerSettings.SectionName).Bind(settings);

    // A failed start is reported below as one line; the host would log it again with its stack trace. (The
    // category logs nothing else here: the broker runs no BackgroundService.)
    builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);

    var broker = builder.Services.AddStompBroker(options => builder.Configuration.GetSection("Broker").Bind(options))
        .AddSessionStoreFromConfiguration(builder.Configuration.GetSection("Broker:Sessions"));

    // Broker:Relay:Kind = inprocess (default) | rabbitmq (with Broker:Relay:RabbitMq:Uri and the other relay options).
    switch (builder.Configuration["Broker:Relay:Kind"]?.Trim().ToLowerInvariant())
    {
        case null or "" or "inprocess":
            break;
        case "rabbitmq":
            broker.AddRabbitMqRelay(options => builder.Configuration.GetSection("Broker:Relay:RabbitMq").Bind(options));
            break;
        case var other:
            throw new InvalidOperationException($"Broker:Relay:Kind is '{other}'; expected 'inprocess' or 'rabbitmq'.");
    }

    // Broker:Cluster:Kind = none (default) | redis: the in-process broker across nodes sharing a Redis (Broker:Cluster:*).
    broker.AddClusterFromConfiguration(builder.Configuration);
    builder.Services.Configure<DurableSessionOptions>(builder.Configuration.GetSection("Broker:Sessions"));
    builder.Services.AddHealthChecks().AddStompBroker();
    builder.Services.AddOpenTelemetry().ConfigureResource(resource => resource.AddService("broker")).WithMetrics(metrics => metrics.AddMeter(BrokerMetrics.MeterName, "System.Runtime").AddPrometheusExporter());
    builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
    builder.Services.AddBrokerAdmin(builder.Configuration);

    if (!IPAddress.TryParse(settings.ListenAddress, out var address))
    {
        throw new InvalidOperationException($"Broker:Server:ListenAddress is '{settings.ListenAddress}'; expected an IP address such as 127.0.0.1 or 0.0.0.0.");
    }

    // Broker:Server:Tls: wss:// on the HTTP port and STOMP over TLS on the TCP port, from one certificate.
    var certificate = settings.Tls.Enabled ? ServerTls.LoadCertificate(settings.Tls) : null;
    ListenOptions? http = null;
    ListenOptions? tcp = null;
    builder.WebHost.ConfigureKestrel(kestrel =>
    {
        var tlsLogger = kestrel.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Broker.Server.Tls");
        kestrel.Listen(address, settings.HttpPort, listen =>
        {
            http = listen;
            if (certificate is not null)
            {
                ServerTls.UseTls(listen, certificate, tlsLogger, alpn: true);
            }
        });
        if (settings.TcpPort >= 0)
        {
            kestrel.Listen(address, settings.TcpPort, listen =>
            {
                if (certificate is not null)
                {
                    ServerTls.UseTls(listen, certificate, tlsLogger, alpn: false);
                }

                tcp = listen.UseStomp();
            });
        }
    });

    if (settings.ForwardedHeaders)
    {
        builder.Services.Configure<ForwardedHeadersOptions>(o =>
        {
            o.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto | ForwardedHeaders.XForwardedHost;
            foreach (var proxy in settings.KnownProxies)
            {
                o.KnownProxies.Add(IPAddress.TryParse(proxy, out var known) ? known
                    : throw new InvalidOperationException($"Broker:Server:KnownProxies has '{proxy}'; expected IP addresses."));
            }
        });
    }

    var app = builder.Build();
    if (settings.ForwardedHeaders)
    {
        app.UseForwardedHeaders();
    }

    app.MapStomp(settings.WebSocketPath);
    app.MapStompHealthChecks("/health");
    app.MapPrometheusScrapingEndpoint("/metrics");
    app.MapGet("/", () => Results.Content(DemoPage.Html(settings.WebSocketPath), "text/html; charset=utf-8"));
    app.MapBrokerAdmin();

    app.Lifetime.ApplicationStarted.Register(() =>
    {
        if (!app.Logger.IsEnabled(LogLevel.Information))
        {
            return;
        }

        // The bound endpoints (a configured port 0 becomes the port the OS picked).
        app.Logger.LogInformation("Broker listening: {WebSocket}://{Http}{Path} {Tcp}://{TcpEndPoint}",
            certificate is null ? "ws" : "wss", http?.IPEndPoint, settings.WebSocketPath, certificate is null ? "tcp" : "tcp+tls", tcp?.IPEndPoint?.ToString() ?? "off");
    });

    await app.RunAsync();
    return 0;
}
catch (Exception ex) when (StartupErrors.Describe(ex, settings) is { } line)
{
    // One line an operator can act on, instead of a stack trace.
    Console.Error.WriteLine($"broker: cannot start: {line}");
    return 1;
}
