using System.Collections.Concurrent;
using System.Text.Json;
using System.Threading.Channels;
using Broker.Application;
using Broker.Protocol;

namespace Broker.Tests.Application;

/// <summary>What the application tests share: clients connected as a user, JSON bodies, a recording observer.</summary>
internal static class ApplicationTestKit
{
    /// <summary>An embedded server with alice and bob (passcode = login) besides guest, the app's handlers mapped by <paramref name="app"/>.</summary>
    public static Task<TestServer> StartAsync(Action<Microsoft.AspNetCore.Builder.WebApplication>? app = null, Action<Microsoft.Extensions.DependencyInjection.IServiceCollection>? services = null, Action<StompBrokerOptions>? configure = null) =>
        TestServer.StartAsync(o =>
        {
            o.Users["alice"] = "alice";
            o.Users["bob"] = "bob";
            configure?.Invoke(o);
        }, services, app);

    /// <summary>A TCP client connected as <paramref name="login"/>; its CONNECTED frame is returned too.</summary>
    public static async Task<(StompTestClient Client, ReceivedFrame Connected)> ConnectAsync(TestServer server, string login = "alice", string? token = null)
    {
        var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connected = await client.ConnectAsync(login: login, passcode: login, sessionToken: token);
        if (connected.Command != StompCommand.Connected)
        {
            throw new InvalidOperationException("CONNECT failed: " + connected);
        }

        return (client, connected);
    }

    public static Task SendJsonAsync(this StompTestClient client, string destination, string json, params (string Name, string Value)[] headers) =>
        client.PublishAsync(destination, json, [("content-type", "application/json"), .. headers]);

    public static JsonElement Json(this ReceivedFrame frame) => JsonDocument.Parse(frame.Body).RootElement;

    /// <summary>The next frame, which must be a MESSAGE on subscription <paramref name="subscription"/>.</summary>
    public static async Task<ReceivedFrame> ExpectMessageAsync(this StompTestClient client, string subscription)
    {
        var frame = await client.ReceiveAsync();
        if (frame.Command != StompCommand.Message || frame["subscription"] != subscription)
        {
            throw new InvalidOperationException($"expected a MESSAGE on subscription {subscription}, got {frame}");
        }

        return frame;
    }
}

/// <summary>Records every session event, in order, and lets a test await the next ones.</summary>
internal sealed class RecordingObserver : IStompSessionObserver
{
    private readonly Channel<string> _events = Channel.CreateUnbounded<string>();

    public ConcurrentQueue<string> All { get; } = new();

    public ConcurrentQueue<StompSessionInfo> Sessions { get; } = new();

    public void OnConnected(StompSessionInfo session) => Record($"connected {session.Id} {session.Login}", session);

    public void OnResumed(StompSessionInfo session, bool recovered) => Record($"resumed {session.Id} recovered={recovered}", session);

    public void OnSubscribed(StompSubscriptionEvent subscription) => Record($"subscribed {subscription.SessionId} {subscription.Subscription.Id} {subscription.Subscription.Destination}");

    public void OnUnsubscribed(StompSubscriptionEvent subscription) => Record($"unsubscribed {subscription.SessionId} {subscription.Subscription.Id} {subscription.Subscription.Destination}");

    public void OnDisconnected(StompSessionInfo session, StompDisconnectReason reason) => Record($"disconnected {session.Id} {reason}", session);

    public void OnExpired(StompSessionInfo session) => Record($"expired {session.Id}", session);

    /// <summary>The next event (in order); throws TimeoutException when none comes in time.</summary>
    public async Task<string> NextAsync()
    {
        using var cts = new CancellationTokenSource(StompTestClient.DefaultTimeout);
        try
        {
            return await _events.Reader.ReadAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"no session event in time; so far: {string.Join(" | ", All)}");
        }
    }

    /// <summary>Skips events until one starting with <paramref name="prefix"/>; returns it.</summary>
    public async Task<string> NextStartingWithAsync(string prefix)
    {
        while (true)
        {
            var next = await NextAsync();
            if (next.StartsWith(prefix, StringComparison.Ordinal))
            {
                return next;
            }
        }
    }

    private void Record(string text, StompSessionInfo? session = null)
    {
        if (session is not null)
        {
            Sessions.Enqueue(session);
        }

        All.Enqueue(text);
        _events.Writer.TryWrite(text);
    }
}
