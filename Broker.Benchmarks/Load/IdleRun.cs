using System.Diagnostics;
using System.Globalization;
using Broker.Protocol;

namespace Broker.Benchmarks.Load;

/// <summary>
/// <c>load idle --url URL --connections N [--server-pid PID]</c>: opens N connections, each subscribed
/// (RECEIPT awaited) to one destination, reads the server's resident memory before and after, then
/// proves every connection is still alive by publishing one message and counting that all N got it.
/// </summary>
internal static class IdleRun
{
    public static async Task<int> RunAsync(LoadOptions options, TextWriter output)
    {
        output.WriteLine($"idle: {options.Connections} subscribed connections to {options.Target} {options.Destination}" +
                         (options.SourceAddresses > 1 ? $" from 127.0.0.1-{options.SourceAddresses}" : ""));
        using var stop = new CancellationTokenSource();
        var rssBefore = ResidentKiB(options.ServerPid);
        var connections = new LoadConnection?[options.Connections];
        var receivers = new Receiver[options.Connections];
        var failures = 0;
        string? firstFailure = null;
        var opened = 0;
        var clock = Stopwatch.StartNew();
        using (var gate = new SemaphoreSlim(options.Concurrency))
        {
            var opening = Enumerable.Range(0, options.Connections).Select(async i =>
            {
                await gate.WaitAsync();
                try
                {
                    var connection = await LoadConnection.OpenAsync(options.Target, options.SourceAddress(i), 512, stop.Token);
                    connections[i] = connection;
                    await connection.ConnectStompAsync(options.VirtualHost, options.Login, options.Passcode, stop.Token);
                    connection.WriteSubscribe("sub-0", options.Destination, "auto", 0, "subscribed");
                    await connection.FlushAsync(stop.Token);
                    await connection.ExpectAsync(StompCommand.Receipt, stop.Token);
                    receivers[i] = new Receiver();
                    receivers[i].Loop = ReceiveAsync(connection, receivers[i], stop.Token);
                    var n = Interlocked.Increment(ref opened);
                    if (n % 10_000 == 0)
                    {
                        output.WriteLine($"  {n} connections subscribed ({clock.Elapsed.TotalSeconds:0.0} s)");
                    }
                }
                catch (Exception e)
                {
                    Interlocked.Increment(ref failures);
                    Interlocked.CompareExchange(ref firstFailure, $"connection {i}: {e.GetType().Name}: {e.Message}", null);
                }
                finally
                {
                    gate.Release();
                }
            }).ToArray();
            await Task.WhenAll(opening);
        }

        output.WriteLine($"opened {opened} of {options.Connections} in {clock.Elapsed.TotalSeconds:0.0} s; waiting {options.Settle} s before reading memory");
        await Task.Delay(TimeSpan.FromSeconds(options.Settle));
        var rssAfter = ResidentKiB(options.ServerPid);

        // Every connection still subscribed? One message must reach all of them.
        var held = 0;
        try
        {
            await using var publisher = await LoadConnection.OpenAsync(options.Target, null, 512, stop.Token);
            await publisher.ConnectStompAsync(options.VirtualHost, options.Login, options.Passcode, stop.Token);
            var w = new StompFrameWriter(publisher.Output, StompVersion.V12).Command(StompCommand.Send);
            w.Header("destination"u8, options.Destination);
            w.Header("content-type"u8, "text/plain");
            w.End("still there?"u8);
            await publisher.FlushAsync(stop.Token);
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                held = receivers.Count(r => r is not null && r.Received);
                if (held >= opened)
                {
                    break;
                }

                await Task.Delay(100);
            }
        }
        catch (Exception e)
        {
            firstFailure ??= $"publisher: {e.Message}";
        }

        await stop.CancelAsync();
        using (var gate = new SemaphoreSlim(256))
        {
            await Task.WhenAll(connections.Where(c => c is not null).Select(async c =>
            {
                await gate.WaitAsync();
                try
                {
                    await c!.DisposeAsync();
                }
                finally
                {
                    gate.Release();
                }
            }));
        }

        var perConnection = rssBefore is { } b && rssAfter is { } a && opened > 0 ? (a - b) / (double)opened : double.NaN;
        string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
        output.WriteLine($"held {held} of {options.Connections} (one message reached each); {failures} failed to open" + (firstFailure is null ? "" : $" (first: {firstFailure})"));
        if (options.ServerPid is { } pid)
        {
            output.WriteLine($"server pid {pid} resident memory: {rssBefore} KiB before, {rssAfter} KiB after -> {F(perConnection)} KiB per connection");
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result: label={options.Label ?? "idle"} connections={options.Connections} opened={opened} held={held} failed={failures} rss_before_kib={rssBefore} rss_after_kib={rssAfter} kib_per_connection={F(perConnection)}"));
        return held == options.Connections && failures == 0 ? 0 : 1;
    }

    /// <summary>VmRSS of a process, in KiB, from /proc (null when not given or not readable).</summary>
    public static long? ResidentKiB(int? pid)
    {
        if (pid is null)
        {
            return null;
        }

        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }

        return null;
    }

    private static async Task ReceiveAsync(LoadConnection connection, Receiver receiver, CancellationToken cancellationToken)
    {
        try
        {
            await connection.ReadAsync(receiver, cancellationToken);
        }
        catch (Exception) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception)
        {
            // Counted as not held.
        }
    }

    private sealed class Receiver : FrameHandler
    {
        public Task Loop { get; set; } = Task.CompletedTask;

        public bool Received { get; private set; }

        public override bool OnFrame(StompFrame frame)
        {
            if (frame.Command == StompCommand.Message)
            {
                Received = true;
            }

            return frame.Command != StompCommand.Error;
        }
    }
}
