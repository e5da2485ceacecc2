using System.IO.Pipelines;
using Broker.Sessions;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Tests;

/// <summary>Runs sessions over in-memory pipes against one broker: the engine without sockets.</summary>
internal sealed class SessionHarness : IAsyncDisposable
{
    private readonly ServiceProvider _provider;
    private readonly List<(StompTestClient Client, Task Session)> _running = [];

    public SessionHarness(Action<StompBrokerOptions>? configure = null, Action<IStompBrokerBuilder>? broker = null)
    {
        var services = new ServiceCollection().AddLogging();
        var builder = services.AddStompBroker(o =>
        {
            o.Users["guest"] = "guest";
            o.Users["mallory"] = "mallory";
            // With users configured, anonymous clients are refused unless allowed outright; these tests use both.
            o.AllowAnonymous = true;
            configure?.Invoke(o);
        });
        broker?.Invoke(builder);
        _provider = services.BuildServiceProvider();
    }

    public IServiceProvider Services => _provider;

    public StompSessionRegistry Registry => _provider.GetRequiredService<StompSessionRegistry>();

    /// <summary>Waits until the session has noticed its dropped connection and let go (it left the registry).</summary>
    public Task WaitSessionGoneAsync(string sessionId) => Eventually.That(() => Registry.Find(sessionId) is null, $"session {sessionId} released");

    /// <summary>A new client with its session running.</summary>
    public StompTestClient Open()
    {
        var toServer = new Pipe();
        var toClient = new Pipe();
        var transport = new PipeTransport(toServer.Reader, toClient.Writer);
        var session = new StompSession(transport, _provider.GetRequiredService<StompSessionServices>());
        var run = session.RunAsync(CancellationToken.None);
        var client = StompTestClient.OverPipes(toClient.Reader, toServer.Writer);
        _running.Add((client, run));
        return client;
    }

    /// <summary>A client that has connected as guest.</summary>
    public async Task<StompTestClient> OpenConnectedAsync(string acceptVersion = "1.2") => (await OpenConnectedAsync(acceptVersion, "guest")).Client;

    /// <summary>A client connected as <paramref name="login"/> (passcode = login), optionally resuming <paramref name="token"/>.</summary>
    public async Task<(StompTestClient Client, ReceivedFrame Connected)> OpenConnectedAsync(string acceptVersion, string? login, string? token = null)
    {
        var client = Open();
        var connected = await client.ConnectAsync(acceptVersion, login: login, passcode: login, sessionToken: token);
        if (connected.Command != Broker.Protocol.StompCommand.Connected)
        {
            throw new InvalidOperationException("CONNECT failed: " + connected);
        }

        return (client, connected);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (client, session) in _running)
        {
            await client.DisposeAsync();
            await Task.WhenAny(session, Task.Delay(5000));
        }

        await _provider.DisposeAsync();
    }
}
