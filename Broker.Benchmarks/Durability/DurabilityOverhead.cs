using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using Broker.Protocol;

namespace Broker.Benchmarks.Durability;

/// <summary>
/// <c>durability-overhead [--messages N] [--subscribers N] [--runs N] [--body BYTES] [--store sqlite|redis|memory]</c>:
/// topic fan-out throughput with durable sessions off (no store registered) and on (the store).
/// Each run hosts a fresh broker in-process (TCP on 127.0.0.1); the subscribers connect and subscribe
/// to one topic (waiting for the receipts), then one publisher writes N receipt-free SEND frames of
/// BODY bytes as fast as the socket takes them, and the clock stops when every subscriber has counted
/// N MESSAGE frames. Deliveries/s = subscribers × N / elapsed. Runs alternate off/on; the best of each
/// is compared. <c>MaxPendingBytes</c> is raised to 1 GiB in both so that a subscriber that falls behind
/// the unthrottled publisher is not closed as a slow consumer.
/// </summary>
internal static class DurabilityOverhead
{
    private const string Topic = "/topic/bench.fanout";

    public static async Task<int> RunAsync(string[] args)
    {
        var messages = 200_000;
        var subscribers = 10;
        var runs = 3;
        var bodySize = 128;
        var onStore = BenchStore.Sqlite;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--messages":
                    messages = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--subscribers":
                    subscribers = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--runs":
                    runs = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--body":
                    bodySize = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--store":
                    onStore = BenchStores.Parse(args[++i]);
                    break;
                default:
                    Console.Error.WriteLine($"unknown argument '{args[i]}'");
                    return 1;
            }
        }

        Console.WriteLine($"durability overhead: {messages} messages of {bodySize} B, 1 publisher, {subscribers} subscribers, {runs} runs each, TCP on 127.0.0.1, {Environment.ProcessorCount} cores");
        Console.WriteLine($"load average before: {LoadAverage.Read()}");
        Console.WriteLine("warm-up, one full run each (not counted)...");
        await RunOnceAsync(BenchStore.None, messages, subscribers, bodySize);
        await RunOnceAsync(onStore, messages, subscribers, bodySize);

        var results = new Dictionary<BenchStore, List<double>> { [BenchStore.None] = [], [onStore] = [] };
        for (var run = 0; run < runs; run++)
        {
            // Alternate which goes first, so drift on a shared machine does not favour one side.
            BenchStore[] order = run % 2 == 0 ? [BenchStore.None, onStore] : [onStore, BenchStore.None];
            foreach (var store in order)
            {
                var rate = await RunOnceAsync(store, messages, subscribers, bodySize);
                results[store].Add(rate);
                Console.WriteLine($"run {run + 1}, durable sessions {Label(store)}: {rate:N0} deliveries/s");
            }
        }

        Console.WriteLine($"load average after: {LoadAverage.Read()}");
        var off = results[BenchStore.None];
        var on = results[onStore];
        Console.WriteLine();
        Console.WriteLine("| durable sessions | runs (deliveries/s) | best | median |");
        Console.WriteLine("|---|---|--:|--:|");
        Console.WriteLine($"| off (no store) | {string.Join(", ", off.Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))} | {off.Max().ToString("N0", CultureInfo.InvariantCulture)} | {Median(off).ToString("N0", CultureInfo.InvariantCulture)} |");
        Console.WriteLine($"| on ({BenchStores.Name(onStore)}) | {string.Join(", ", on.Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))} | {on.Max().ToString("N0", CultureInfo.InvariantCulture)} | {Median(on).ToString("N0", CultureInfo.InvariantCulture)} |");
        Console.WriteLine($"on/off, best of {runs}: {on.Max() / off.Max():P1}; median: {Median(on) / Median(off):P1}");
        return 0;
    }

    private static string Label(BenchStore store) => store == BenchStore.None ? "off" : $"on ({BenchStores.Name(store)})";

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>One run on a fresh broker; returns deliveries per second.</summary>
    private static async Task<double> RunOnceAsync(BenchStore store, int messages, int subscriberCount, int bodySize)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var ct = timeout.Token;
        await using var server = await BenchServer.StartAsync(store, o =>
        {
            o.HeartbeatSend = TimeSpan.Zero;
            o.HeartbeatReceive = TimeSpan.Zero;
            o.MaxPendingBytes = 1L << 30;
        });

        var subscribers = new List<RawStompClient>(subscriberCount);
        try
        {
            for (var i = 0; i < subscriberCount; i++)
            {
                var (client, connected) = await RawStompClient.ConnectAsync(server.TcpPort, ct);
                subscribers.Add(client);
                if ((connected.Header("session-token") is not null) != (store != BenchStore.None))
                {
                    throw new InvalidOperationException($"durable sessions should be {Label(store)}, CONNECTED was {connected}");
                }

                await client.SendSubscribeAsync("fan", Topic, "sub", ct);
                await client.ExpectReceiptAsync("sub", ct);
            }

            var (publisher, _) = await RawStompClient.ConnectAsync(server.TcpPort, ct);
            await using var publisherScope = publisher;
            var chunk = SendFrames(bodySize, 256, out var framesPerChunk);

            var counting = subscribers.Select(s => Task.Run(() => s.CountMessagesAsync(messages, ct), ct)).ToArray();
            var started = Stopwatch.GetTimestamp();
            var sent = 0;
            while (sent < messages)
            {
                var frames = Math.Min(framesPerChunk, messages - sent);
                await publisher.WriteRawAsync(chunk.AsMemory(0, chunk.Length / framesPerChunk * frames), ct);
                sent += frames;
            }

            await Task.WhenAll(counting);
            var elapsed = Stopwatch.GetElapsedTime(started);
            return (double)messages * subscriberCount / elapsed.TotalSeconds;
        }
        finally
        {
            foreach (var subscriber in subscribers)
            {
                await subscriber.DisposeAsync();
            }
        }
    }

    /// <summary><paramref name="count"/> identical SEND frames back to back.</summary>
    private static byte[] SendFrames(int bodySize, int count, out int framesPerChunk)
    {
        var one = new ArrayBufferWriter<byte>();
        var writer = new StompFrameWriter(one, StompVersion.V12).Command(StompCommand.Send);
        writer.Header("destination"u8, Topic);
        writer.Header("content-type"u8, "text/plain");
        var body = new byte[bodySize];
        body.AsSpan().Fill((byte)'x');
        writer.End(body);
        var frame = one.WrittenSpan;
        var chunk = new byte[frame.Length * count];
        for (var i = 0; i < count; i++)
        {
            frame.CopyTo(chunk.AsSpan(i * frame.Length));
        }

        framesPerChunk = count;
        return chunk;
    }
}
