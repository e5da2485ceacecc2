using System.Net;
using Broker;
using Broker.Server;

var builder = WebApplication.CreateBuilder(args);
var settings = builder.Configuration.GetSection(ServerSettings.SectionName).Get<ServerSettings>() ?? new ServerSettings();

builder.Services.AddStompBroker(options => builder.Configuration.GetSection("Broker").Bind(options));
builder.Services.AddHealthChecks();
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));

builder.WebHost.ConfigureKestrel(kestrel =>
{
    var address = IPAddress.Parse(settings.ListenAddress);
    kestrel.Listen(address, settings.HttpPort);
    if (settings.TcpPort >= 0)
    {
        kestrel.Listen(address, settings.TcpPort, listen => listen.UseStomp());
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

    app.Logger.LogInformation("Broker listening: ws://{Address}:{HttpPort}{Path} and tcp://{Address}:{TcpPort}",
        settings.ListenAddress, settings.HttpPort, settings.WebSocketPath, settings.ListenAddress, settings.TcpPort);
});

await app.RunAsync();
