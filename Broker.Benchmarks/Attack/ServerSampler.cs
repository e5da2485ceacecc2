using System.Globalization;
using Broker.Benchmarks.Load;

namespace Broker.Benchmarks.Attack;

/// <summary>
/// Samples the server every 250 ms: its VmRSS (/proc/PID/status) and, from its Prometheus endpoint, the memory
/// budget (<c>broker_memory_used*</c>, all components together), the budget's limit and the GC heap after the
/// last collection (<c>dotnet_gc_last_collection_heap_size*</c>, when the server exports System.Runtime). Keeps the maxima.
/// </summary>
internal sealed class ServerSampler(int? pid, Uri? metrics) : IDisposable
{
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(2) };
    private double? _cpuStart;
    private long _wallStart;

    public long? RssMaxKiB { get; private set; }

    public long? RssStartKiB { get; private set; }

    public long? BudgetMax { get; private set; }

    public long? BudgetLimit { get; private set; }

    public long? GcHeapMax { get; private set; }

    /// <summary>The component holding most at the budget's peak (e.g. <c>queues</c>), from the same sample.</summary>
    public string? BudgetPeakComponent { get; private set; }

    /// <summary>The server's CPU time over the run, in cores (utime + stime from /proc/PID/stat), when a PID is given.</summary>
    public double? CpuCores { get; private set; }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        RssStartKiB = IdleRun.ResidentKiB(pid);
        _cpuStart = CpuSeconds(pid);
        _wallStart = System.Diagnostics.Stopwatch.GetTimestamp();
        while (!cancellationToken.IsCancellationRequested)
        {
            await SampleAsync();
            try
            {
                await Task.Delay(250, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        await SampleAsync();
        if (_cpuStart is { } start && CpuSeconds(pid) is { } end)
        {
            CpuCores = (end - start) / System.Diagnostics.Stopwatch.GetElapsedTime(_wallStart).TotalSeconds;
        }
    }

    // utime + stime (fields 14 and 15 of /proc/PID/stat, after the parenthesised name), in seconds at 100 ticks/s.
    private static double? CpuSeconds(int? pid)
    {
        try
        {
            var stat = pid is { } p ? File.ReadAllText($"/proc/{p}/stat") : null;
            var fields = stat?[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return fields is null ? null : (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private async Task SampleAsync()
    {
        if (IdleRun.ResidentKiB(pid) is { } rss && rss > (RssMaxKiB ?? 0))
        {
            RssMaxKiB = rss;
        }

        if (metrics is null)
        {
            return;
        }

        string text;
        try
        {
            text = await _http.GetStringAsync(metrics);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return; // no endpoint, or too busy to answer within 2 s: the next sample tries again
        }

        long used = 0, heap = 0, top = 0;
        string? topComponent = null;
        var sawBudget = false;
        var sawHeap = false;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith('#') || Value(line) is not { } value)
            {
                continue;
            }

            if (line.StartsWith("broker_memory_used", StringComparison.Ordinal))
            {
                used += value;
                sawBudget = true;
                if (value > top && Label(line, "component") is { } component)
                {
                    (top, topComponent) = (value, component);
                }
            }
            else if (line.StartsWith("broker_memory_limit", StringComparison.Ordinal))
            {
                BudgetLimit = value;
            }
            else if (line.StartsWith("dotnet_gc_last_collection_heap_size", StringComparison.Ordinal))
            {
                heap += value;
                sawHeap = true;
            }
        }

        if (sawBudget && used >= (BudgetMax ?? 0))
        {
            BudgetMax = used;
            BudgetPeakComponent = topComponent;
        }

        if (sawHeap && heap > (GcHeapMax ?? 0))
        {
            GcHeapMax = heap;
        }
    }

    // "name{labels} value [timestamp]" -> value (Prometheus text format; gauges here are integers).
    private static long? Value(string line)
    {
        var end = line.IndexOf('}', StringComparison.Ordinal);
        var parts = line[(end + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (end < 0)
        {
            parts = parts.Length > 1 ? parts[1..] : [];
        }

        return parts.Length > 0 && double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? (long)v : null;
    }

    private static string? Label(string line, string name)
    {
        var start = line.IndexOf(name + "=\"", StringComparison.Ordinal);
        if (start < 0)
        {
            return null;
        }

        start += name.Length + 2;
        var end = line.IndexOf('"', start);
        return end > start ? line[start..end] : null;
    }

    public void Dispose() => _http.Dispose();
}
