using System.Net;
using Broker;
using Broker.Durability;
using Broker.Server;
using Microsoft.AspNetCore.Server.Kestrel.Core;

var builder = WebApplication.CreateBuilder(args);
var settings = builder.Configuration.GetSection(ServerSettings.SectionName).Get<ServerSettings>() ?? new ServerSettings();

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
builder.Services.AddHealthChecks();
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));

ListenOptions? http = null;
ListenOptions? tcp = null;
builder.WebHost.ConfigureKestrel(kestrel =>
{
    var address = IPAddress.Parse(settings.ListenAddress);
    kestrel.Listen(address, settings.HttpPort, listen => http = listen);
    if (settings.TcpPort >= 0)
    {
        kestrel.Listen(address, settings.TcpPort, listen => tcp = listen.UseStomp());
    }
});

var app = builder.Build();
app.MapStomp(settings.WebSocketPath);
app.MapHealthChecks("/health");
app.MapGet("/", () => Results.Content(DemoPage.Html(settings.WebSocketPath), "text/html; charset=utf-8"));

app.Lifetime.ApplicationStarted.Register(() =>
{
    if (!app.Logger.IsEnabled(LogLevel.Information))
    {
        return;
    }

    // The bound endpoints (a configured port 0 becomes the port the OS picked).
    app.Logger.LogInformation("Broker listening: ws://{Http}{Path} tcp://{Tcp}", http?.IPEndPoint, settings.WebSocketPath, tcp?.IPEndPoint?.ToString() ?? "off");
});

await app.RunAsync();
