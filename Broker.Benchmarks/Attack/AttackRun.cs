using System.Diagnostics;
using System.Globalization;

namespace Broker.Benchmarks.Attack;

/// <summary>
/// <c>attack NAME --url URL ...</c>: one of issue 11's hostile clients against a running broker for a bounded
/// time, while an <see cref="OrdinaryClient"/> round trips on its own topic and a <see cref="ServerSampler"/>
/// watches the server's memory. Prints what the attacker got back and a <c>result:</c> line; exits 1 when the
/// ordinary client lost a message.
/// </summary>
internal static class AttackRun
{
    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            output.WriteLine(AttackOptions.Usage);
            return 0;
        }

        AttackOptions options;
        try
        {
            options = AttackOptions.Parse(args);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or UriFormatException)
        {
            Console.Error.WriteLine($"attack: {e.Message}");
            Console.Error.WriteLine(AttackOptions.Usage);
            return 2;
        }

        var bound = options.Count == long.MaxValue ? "" : $", at most {options.Count} operations";
        output.WriteLine($"attack: {options.Name} against {options.Target} for {options.Duration.TotalSeconds:0.#} s{bound}; ordinary client every {options.Interval.TotalMilliseconds:0.#} ms; attackers from {options.AttackerSource?.ToString() ?? "the ordinary client's address"}");

        var ordinary = new OrdinaryClient(options);
        using var startTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await ordinary.StartAsync(startTimeout.Token);
        }
        catch (Exception e)
        {
            output.WriteLine($"error: the ordinary client could not start: {e.Message}");
            return 1;
        }

        using var sampling = new CancellationTokenSource();
        using var sampler = new ServerSampler(options.ServerPid, options.MetricsUri);
        var sample = sampler.RunAsync(sampling.Token);

        using var attackOver = new CancellationTokenSource(options.Duration);
        using var drainOver = new CancellationTokenSource();
        var stats = new AttackStats(options.Count);
        var started = Stopwatch.StartNew();
        var ordinaryRun = ordinary.RunAsync(attackOver.Token, drainOver.Token);
        var attack = Attacks.RunAsync(options, stats, attackOver.Token);

        // The attackers stop at the deadline or at --count; either way they get a few seconds to wind down.
        while (!attack.IsCompleted && !attackOver.IsCancellationRequested)
        {
            await Task.WhenAny(attack, Task.Delay(100));
            if (stats.CountReached)
            {
                await attackOver.CancelAsync();
            }
        }

        await attackOver.CancelAsync();
        var attackTime = started.Elapsed;
        if (await Task.WhenAny(attack, Task.Delay(TimeSpan.FromSeconds(10))) != attack)
        {
            output.WriteLine("warning: attackers still running 10 s after the attack ended; abandoned");
        }

        drainOver.CancelAfter(options.Drain);
        await ordinaryRun;
        await sampling.CancelAsync();
        await sample;

        foreach (var (message, n) in stats.Errors.OrderByDescending(e => e.Value).Take(10))
        {
            output.WriteLine($"attacker got ERROR x{n}: {message}");
        }

        foreach (var (message, n) in stats.Failures.OrderByDescending(e => e.Value).Take(5))
        {
            output.WriteLine($"attacker connection ended x{n}: {message}");
        }

        if (!ordinary.Errors.IsEmpty)
        {
            output.WriteLine($"ordinary client: {ordinary.DescribeErrors()}");
        }

        var latency = ordinary.Latency;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result: attack={options.Name} duration_s={attackTime.TotalSeconds:0.0} attacker_ops={stats.Ops} attacker_connections={stats.Connections} " +
            $"attacker_receipts={stats.Receipts} attacker_errors={stats.Errors.Values.Sum()} limits={stats.LimitsNamed()} " +
            $"round_trips={latency.Count} lost={ordinary.Lost} ordinary_errors={ordinary.Errors.Values.Sum()} " +
            $"p50_ms={latency.PercentileMs(50):0.00} p99_ms={latency.PercentileMs(99):0.00} max_ms={latency.MaxMs:0.00} " +
            $"rss_start_mib={Mib(sampler.RssStartKiB * 1024)} rss_max_mib={Mib(sampler.RssMaxKiB * 1024)} budget_max_mib={Mib(sampler.BudgetMax)} " +
            $"budget_peak={sampler.BudgetPeakComponent ?? "-"} gc_heap_max_mib={Mib(sampler.GcHeapMax)} memory_limit_mib={Mib(sampler.BudgetLimit)} " +
            $"server_cpu={(sampler.CpuCores is { } cpu ? cpu.ToString("0.00", CultureInfo.InvariantCulture) : "-")} " +
            $"tool_cpu={Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds / started.Elapsed.TotalSeconds:0.00}"));
        return ordinary.Lost == 0 ? 0 : 1;
    }

    private static string Mib(long? bytes) => bytes is { } b ? (b / (1024.0 * 1024)).ToString("0.0", CultureInfo.InvariantCulture) : "-";
}
