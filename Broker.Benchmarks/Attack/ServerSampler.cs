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
    private bool _metricsFailed;

    public long? RssMaxKiB { get; private set; }

    public long? RssStartKiB { get; private set; }

    public long? BudgetMax { get; private set; }

    public long? BudgetLimit { get; private set; }

    public long? GcHeapMax { get; private set; }

    /// <summary>The component holding most at the budget's peak (e.g. <c>queues</c>), from the same sample.</summary>
    public string? BudgetPeakComponent { get; private set; }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        RssStartKiB = IdleRun.ResidentKiB(pid);
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
    }

    private async Task SampleAsync()
    {
        if (IdleRun.ResidentKiB(pid) is { } rss && rss > (RssMaxKiB ?? 0))
        {
            RssMaxKiB = rss;
        }

        if (metrics is null || _metricsFailed)
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
            _metricsFailed = BudgetMax is null; // never answered: stop asking
            return;
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
