using System.Diagnostics;
using System.Globalization;
using Broker.Protocol;

namespace Broker.Benchmarks.Load;

/// <summary>
/// <c>load idle --url URL --connections N [--server-pid PID]</c>: opens N connections, each subscribed
/// (RECEIPT awaited) to one destination, reads the server's resident memory before and after, then
/// proves every connection is still alive by publishing one message and counting that all N got it.
/// With <c>--heartbeat</c> the connections ask for heart-beats and send theirs (<see cref="HeartbeatSender"/>);
/// with <c>--cpu-window</c> the server's CPU use while holding them is read too, less its own idle use
/// read before connecting.
/// </summary>
internal static class IdleRun
{
    public static async Task<int> RunAsync(LoadOptions options, TextWriter output)
    {
        output.WriteLine($"idle: {options.Connections} subscribed connections to {options.Target} {options.Destination}" +
                         (options.SourceAddresses > 1 ? $" from 127.0.0.1-{options.SourceAddresses}" : ""));
        using var stop = new CancellationTokenSource();
        double? baselineCpu = null;
        if (options.CpuWindow > 0)
        {
            baselineCpu = await CpuPercentAsync(options.ServerPid!.Value, options.Baseline);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"server idle baseline: {baselineCpu:0.###} % of a core over {options.Baseline} s"));
        }

        var rssBefore = ResidentKiB(options.ServerPid);
        var connections = new LoadConnection?[options.Connections];
        var beating = new LoadConnection?[options.Connections];
        var heartbeats = new HeartbeatSender(beating);
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
                    var sendInterval = await connection.ConnectStompAsync(options.VirtualHost, options.Login, options.Passcode, options.Heartbeat, stop.Token);
                    connection.WriteSubscribe("sub-0", options.Destination, "auto", 0, "subscribed");
                    await connection.FlushAsync(stop.Token);
                    await connection.ExpectAsync(StompCommand.Receipt, stop.Token);
                    heartbeats.Start(sendInterval, stop.Token);
                    if (sendInterval > 0)
                    {
                        Volatile.Write(ref beating[i], connection);
                    }

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
        double? heldCpu = null;
        long heartbeatsIn = 0, heartbeatsOut = 0;
        if (options.CpuWindow > 0)
        {
            var receivedBefore = ReceivedBytes(connections);
            var sentBefore = heartbeats.Sent;
            heldCpu = await CpuPercentAsync(options.ServerPid!.Value, options.CpuWindow);
            heartbeatsIn = ReceivedBytes(connections) - receivedBefore;
            heartbeatsOut = heartbeats.Sent - sentBefore;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"server CPU holding {opened} connections: {heldCpu:0.###} % of a core over {options.CpuWindow} s ({heldCpu - baselineCpu:0.###} % above its idle baseline); " +
                $"heart-beats meanwhile: {heartbeatsIn} bytes received from the server, {heartbeatsOut} sent by the tool ({heartbeats.Failed} sends failed in all)"));
        }

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
        await heartbeats.Loop;
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

        var cpuFields = heldCpu is { } cpu && baselineCpu is { } idle
            ? string.Create(CultureInfo.InvariantCulture,
                $" cpu_window_s={F(options.CpuWindow)} server_cpu_baseline_pct={idle:0.###} server_cpu_held_pct={cpu:0.###} server_cpu_net_pct={cpu - idle:0.###} heartbeats_in={heartbeatsIn} heartbeats_out={heartbeatsOut}")
            : "";
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result: label={options.Label ?? "idle"} connections={options.Connections} opened={opened} held={held} failed={failures} rss_before_kib={rssBefore} rss_after_kib={rssAfter} kib_per_connection={F(perConnection)} heartbeat={options.Heartbeat}{cpuFields}"));
        return held == options.Connections && failures == 0 ? 0 : 1;
    }

    /// <summary>A process's CPU use (utime + stime from /proc/PID/stat) over the next <paramref name="seconds"/>, in % of one core.</summary>
    public static async Task<double> CpuPercentAsync(int pid, double seconds)
    {
        var before = CpuTicks(pid);
        var clock = Stopwatch.StartNew();
        await Task.Delay(TimeSpan.FromSeconds(seconds));
        var after = CpuTicks(pid);
        return (after - before) / ClockTicksPerSecond / clock.Elapsed.TotalSeconds * 100;
    }

    // USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux architecture .NET runs on.
    private const double ClockTicksPerSecond = 100;

    private static long CpuTicks(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // Fields after the command name (which may contain spaces, so skip past its closing parenthesis):
        // state is field 3, utime field 14, stime field 15.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    }

    private static long ReceivedBytes(LoadConnection?[] connections)
    {
        long total = 0;
        foreach (var connection in connections)
        {
            total += connection?.ReceivedBytes ?? 0;
        }

        return total;
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
