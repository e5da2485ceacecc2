using System.Diagnostics;
using System.Globalization;
using System.Text;
using Broker.Protocol;
using Broker.Sessions;

namespace Broker.Benchmarks.Durability;

/// <summary>
/// <c>resume [--store sqlite|redis|memory|all] [--iterations N] [--warmup N] [--subscriptions N]</c>:
/// how long a client that dropped its connection waits to get its session back.
/// Per iteration, unmeasured: connect, subscribe to 20 topics (waiting for each receipt), drop the
/// connection without DISCONNECT, wait until the session left the live registry and its record is in
/// the store (so the resume reads the store, not the write-behind queue), open a new TCP connection.
/// Measured from writing CONNECT with the token: "CONNECTED" = CONNECTED (resumed:true) arrived;
/// "live" = a message published on one of the 20 topics by another connection, right after
/// CONNECTED, arrived on the resumed connection. After each iteration the client DISCONNECTs (which
/// deletes the record), so the store stays small.
/// </summary>
internal static class ResumeLatency
{
    public static async Task<int> RunAsync(string[] args)
    {
        var stores = new List<BenchStore>();
        var iterations = 200;
        var warmup = 30;
        var subscriptions = 20;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--store":
                    var value = args[++i];
                    stores.AddRange(value == "all" ? [BenchStore.Memory, BenchStore.Sqlite, BenchStore.Redis] : [BenchStores.Parse(value)]);
                    break;
                case "--iterations":
                    iterations = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--warmup":
                    warmup = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--subscriptions":
                    subscriptions = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                default:
                    Console.Error.WriteLine($"unknown argument '{args[i]}'");
                    return 1;
            }
        }

        if (stores.Count == 0)
        {
            stores.Add(BenchStore.Sqlite);
        }

        if (stores.Contains(BenchStore.None))
        {
            Console.Error.WriteLine("resume needs a session store (sqlite, redis or memory)");
            return 1;
        }

        Console.WriteLine($"resume latency: {iterations} iterations after {warmup} warm-up, {subscriptions} subscriptions, TCP on 127.0.0.1, {Environment.ProcessorCount} cores");
        Console.WriteLine($"load average before: {LoadAverage.Read()}");
        var rows = new List<string>();
        foreach (var store in stores)
        {
            var (connected, live, publishToDelivery) = await MeasureAsync(store, iterations, warmup, subscriptions);
            var name = BenchStores.Name(store);
            rows.Add(connected.Row(name));
            rows.Add(live.Row(name));
            rows.Add(publishToDelivery.Row(name));
        }

        Console.WriteLine($"load average after: {LoadAverage.Read()}");
        Console.WriteLine();
        Console.WriteLine(Percentiles.Header);
        foreach (var row in rows)
        {
            Console.WriteLine(row);
        }

        return 0;
    }

    private static async Task<(Percentiles Connected, Percentiles Live, Percentiles PublishToDelivery)> MeasureAsync(BenchStore store, int iterations, int warmup, int subscriptionCount)
    {
        var connected = new Percentiles("CONNECT → CONNECTED");
        var live = new Percentiles("CONNECT → first live MESSAGE");
        var publishToDelivery = new Percentiles("(CONNECTED → MESSAGE)");
        // A run that hangs is a bug: bound the whole store's run.
        using var overall = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        var ct = overall.Token;
        await using var server = await BenchServer.StartAsync(store, o =>
        {
            o.HeartbeatSend = TimeSpan.Zero;
            o.HeartbeatReceive = TimeSpan.Zero;
        });
        var persistence = server.Persistence!;
        var sessionStore = server.SessionStore!;
        var (publisher, _) = await RawStompClient.ConnectAsync(server.TcpPort, ct);
        await using var publisherScope = publisher;
        var topics = Enumerable.Range(0, subscriptionCount).Select(k => $"/topic/resume.bench.t{k}").ToArray();

        for (var iteration = -warmup; iteration < iterations; iteration++)
        {
            using var step = CancellationTokenSource.CreateLinkedTokenSource(ct);
            step.CancelAfter(TimeSpan.FromSeconds(30));
            var token = step.Token;

            // 1. A session with 20 subscriptions, each confirmed by its receipt.
            var (first, hello) = await RawStompClient.ConnectAsync(server.TcpPort, token);
            var sessionToken = hello.Header("session-token") ?? throw new InvalidOperationException("CONNECTED has no session-token: durable sessions are off");
            var sessionId = hello.Header("session")!;
            for (var k = 0; k < topics.Length; k++)
            {
                await first.SendSubscribeAsync("s" + k.ToString(CultureInfo.InvariantCulture), topics[k], "r" + k.ToString(CultureInfo.InvariantCulture), token);
                await first.ExpectReceiptAsync("r" + k.ToString(CultureInfo.InvariantCulture), token);
            }

            // 2. Drop it (no DISCONNECT) and wait until the record is in the store itself.
            first.Abort();
            await WaitForStoredAsync(server.Registry, persistence, sessionStore, sessionId, StompSession.HashToken(sessionToken), topics.Length, token);

            // 3. Resume on a new connection (TCP connect not measured).
            await using var second = await RawStompClient.OpenAsync(server.TcpPort, token);
            var topic = iteration < 0 ? 0 : iteration % topics.Length;
            var body = Encoding.UTF8.GetBytes("probe-" + iteration.ToString(CultureInfo.InvariantCulture));
            var t0 = Stopwatch.GetTimestamp();
            await second.SendConnectAsync(sessionToken, token);
            var reply = await second.ReceiveAsync(token);
            var t1 = Stopwatch.GetTimestamp();
            if (reply.Command != StompCommand.Connected || reply.Header("resumed") != "true")
            {
                throw new InvalidOperationException($"iteration {iteration}: expected CONNECTED with resumed:true, got {reply}");
            }

            await publisher.SendAsync(topics[topic], body, token);
            var message = await second.ReceiveAsync(token);
            var t2 = Stopwatch.GetTimestamp();
            if (message.Command != StompCommand.Message || message.Body != Encoding.UTF8.GetString(body) || message.Header("subscription") != "s" + topic.ToString(CultureInfo.InvariantCulture))
            {
                throw new InvalidOperationException($"iteration {iteration}: expected the probe MESSAGE on s{topic}, got {message}");
            }

            if (iteration >= 0)
            {
                connected.Add(t1 - t0);
                live.Add(t2 - t0);
                publishToDelivery.Add(t2 - t1);
            }

            // 4. End the session for good (the record is deleted) so the store does not grow.
            await second.SendDisconnectAsync("bye", token);
            await second.ExpectReceiptAsync("bye", token);
        }

        await persistence.FlushAsync(TimeSpan.FromSeconds(5));
        Console.WriteLine($"{BenchStores.Name(store)}: p50 {Percentiles.F(connected.At(50))} ms, p99 {Percentiles.F(connected.At(99))} ms to CONNECTED; p50 {Percentiles.F(live.At(50))} ms, p99 {Percentiles.F(live.At(99))} ms to live");
        return (connected, live, publishToDelivery);
    }

    private static async Task WaitForStoredAsync(StompSessionRegistry registry, Broker.Durability.SessionPersistence persistence, Broker.Durability.ISessionStore store, string sessionId, byte[] tokenHash, int subscriptions, CancellationToken cancellationToken)
    {
        while (registry.Find(sessionId) is not null)
        {
            await Task.Delay(1, cancellationToken);
        }

        await persistence.FlushAsync(TimeSpan.FromSeconds(10));
        while (true)
        {
            // FlushAsync returns when the queue is empty, which can be while the last write is in flight.
            if (persistence.Backlog == 0 && await store.FindByTokenHashAsync(tokenHash, cancellationToken) is { } record && record.Subscriptions.Count == subscriptions)
            {
                return;
            }

            await Task.Delay(1, cancellationToken);
        }
    }
}
