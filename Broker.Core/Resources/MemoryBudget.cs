using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Resources;

/// <summary>
/// One budget for the memory the broker holds on behalf of clients (queued messages, topic history, outboxes,
/// open transactions, partly read frames). Components report what they take and give back with
/// <see cref="Add"/>: Interlocked adds, no lock. The process's own memory is held against the same limit: the
/// <see cref="ProcessMemoryMonitor"/> samples it and reports it with <see cref="ReportProcessMemory"/>, and between
/// samples what the budget counts on top of what it held at the last one is added to it (<see cref="ProcessMemory"/>),
/// so that a burst faster than the samples is held too. When either reaches the high watermark (<see cref="Limit"/>)
/// the budget is <see cref="IsAboveHighWatermark"/> until both are below the low watermark (hysteresis); publishers
/// wait on <see cref="WhenBelowLowWatermark"/> meanwhile (flow control), and topics give up their replay history.
/// The state changes under a lock, which only transitions take.
/// </summary>
public sealed class MemoryBudget
{
    // Counters a cache line apart, so that components updated on different cores do not share one.
    private const int Stride = 8;
    private static readonly int ComponentCount = Enum.GetValues<MemoryComponent>().Length;

    private readonly long[] _used = new long[(ComponentCount + 1) * Stride];
    private readonly Lock _gate = new();
    private readonly ILogger _logger;
    private readonly List<Func<long>> _reclaimers = [];
    private long _total;
    private long _sample;
    private long _usedAtSample;
    private int _above;
    private int _blocked;
    private TaskCompletionSource _below = Completed();

    public MemoryBudget(IOptions<StompBrokerOptions> options, BrokerMetrics metrics, ILoggerFactory loggerFactory)
        : this(options.Value, metrics, loggerFactory.CreateLogger<MemoryBudget>())
    {
    }

    internal MemoryBudget(StompBrokerOptions options, BrokerMetrics? metrics, ILogger logger)
    {
        _logger = logger;
        Limit = options.MemoryLimit is > 0 and var limit ? limit : DefaultLimit();
        LowWatermark = (long)(Limit * options.MemoryLowWatermark);
        if (metrics is not null)
        {
            metrics.Observe("memory.used", "budget", () =>
            {
                var measurements = new Measurement<long>[ComponentCount];
                for (var i = 0; i < ComponentCount; i++)
                {
                    measurements[i] = new Measurement<long>(Volatile.Read(ref _used[(i + 1) * Stride]), new KeyValuePair<string, object?>("component", Tag((MemoryComponent)i)));
                }

                return measurements;
            });
            metrics.Observe("memory.limit", "budget", () => Limit);
            metrics.Observe("flow.blocked", "budget", () => BlockedPublishers);
        }
    }

    /// <summary>
    /// The high watermark, in bytes: <c>Broker:MemoryLimit</c>, or 40 % of the memory available to the process; held
    /// against what the broker holds for clients and (by default) the process's resident memory.
    /// </summary>
    public long Limit { get; }

    /// <summary>Below this, a budget above its high watermark is below it again and publishers resume.</summary>
    public long LowWatermark { get; }

    /// <summary>Bytes held now, all components together.</summary>
    public long Used => Interlocked.Read(ref _total);

    /// <summary>
    /// The process's memory as the budget holds it against <see cref="Limit"/>, in bytes: the resident memory at the last
    /// sample plus what the budget has counted since beyond what it held then (what it gave back is not taken off: it is
    /// garbage until a collection, and the next sample says). 0 when it is not sampled (<see cref="MemoryCalculation.Budget"/>).
    /// </summary>
    public long ProcessMemory => ProcessMemoryWith(Interlocked.Read(ref _total));

    /// <summary>
    /// True from when usage or the process's memory reached <see cref="Limit"/> until both fell below
    /// <see cref="LowWatermark"/>.
    /// </summary>
    public bool IsAboveHighWatermark => Volatile.Read(ref _above) != 0;

    /// <summary>Publishers waiting for the budget to fall below its low watermark.</summary>
    public int BlockedPublishers => Volatile.Read(ref _blocked);

    /// <summary>Bytes <paramref name="component"/> holds now.</summary>
    public long UsedBy(MemoryComponent component) => Volatile.Read(ref _used[((int)component + 1) * Stride]);

    /// <summary>
    /// 40 % of the memory available to the process, as RabbitMQ's default high watermark: the GC's figure respects
    /// a container's (cgroup) limit and a configured GC heap limit.
    /// </summary>
    public static long DefaultLimit() => (long)(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes * 0.4);

    /// <summary>Counts <paramref name="bytes"/> (negative: given back) against the budget.</summary>
    public void Add(MemoryComponent component, long bytes)
    {
        if (bytes == 0)
        {
            return;
        }

        Interlocked.Add(ref _used[((int)component + 1) * Stride], bytes);
        var total = Interlocked.Add(ref _total, bytes);
        if (bytes > 0)
        {
            if (Volatile.Read(ref _above) == 0 && (total >= Limit || ProcessMemoryWith(total) >= Limit))
            {
                Enter();
            }
        }
        else if (total < LowWatermark && Volatile.Read(ref _above) != 0 && ProcessMemoryWith(total) < LowWatermark)
        {
            Leave();
        }
    }

    /// <summary>The process's resident memory now (a sample): at <see cref="Limit"/> it blocks publishers as usage does.</summary>
    internal void ReportProcessMemory(long bytes)
    {
        Volatile.Write(ref _usedAtSample, Interlocked.Read(ref _total));
        Volatile.Write(ref _sample, bytes);
        if (bytes >= Limit)
        {
            if (Volatile.Read(ref _above) == 0)
            {
                Enter();
            }
        }
        else if (bytes < LowWatermark && Volatile.Read(ref _above) != 0 && Interlocked.Read(ref _total) < LowWatermark)
        {
            Leave();
        }
    }

    /// <summary>Gives back <paramref name="bytes"/>.</summary>
    public void Subtract(MemoryComponent component, long bytes) => Add(component, -bytes);

    /// <summary>Completes when the budget is (or next falls) below its low watermark; never polls.</summary>
    public Task WhenBelowLowWatermark() => Volatile.Read(ref _below).Task;

    /// <summary>
    /// Runs <paramref name="reclaim"/> (on the thread pool) each time the budget goes above its high watermark:
    /// for what can be given up without losing a message (topic replay history). It returns the bytes it gave back.
    /// </summary>
    internal void OnAboveHighWatermark(Func<long> reclaim)
    {
        lock (_gate)
        {
            _reclaimers.Add(reclaim);
        }
    }

    /// <summary>A publisher starts waiting (<see cref="BlockedPublishers"/>); dispose the result when it stops.</summary>
    internal BlockedPublisher Block()
    {
        Interlocked.Increment(ref _blocked);
        return new BlockedPublisher(this);
    }

    private void Enter()
    {
        Func<long>[] reclaimers;
        lock (_gate)
        {
            var total = Interlocked.Read(ref _total);
            if (_above != 0 || (total < Limit && ProcessMemoryWith(total) < Limit))
            {
                return;
            }

            _below = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Interlocked.Exchange(ref _above, 1);
            reclaimers = [.. _reclaimers];
        }

        if (Used >= Limit)
        {
            Log.AboveHighWatermark(_logger, Used, Limit, Describe());
        }
        else
        {
            Log.ProcessAboveHighWatermark(_logger, ProcessMemory, Limit, Used, Describe());
        }
        if (reclaimers.Length > 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static s => s.Self.Reclaim(s.Reclaimers), (Self: this, Reclaimers: reclaimers), preferLocal: false);
        }

        // Given back while we were entering (its Add or sample saw the state before this one): leave again.
        if (Interlocked.Read(ref _total) < LowWatermark && ProcessMemory < LowWatermark)
        {
            Leave();
        }
    }

    private void Leave()
    {
        TaskCompletionSource below;
        lock (_gate)
        {
            var total = Interlocked.Read(ref _total);
            if (_above == 0 || total >= LowWatermark || ProcessMemoryWith(total) >= LowWatermark)
            {
                return;
            }

            below = _below;
            _below = Completed();
            Interlocked.Exchange(ref _above, 0);
        }

        Log.BelowLowWatermark(_logger, Used, ProcessMemory, LowWatermark, BlockedPublishers);
        below.TrySetResult();
    }

    // The last sample plus what the budget holds beyond what it held then; 0 before the first sample.
    private long ProcessMemoryWith(long total)
    {
        // Plain loads (64-bit): Add calls this per message it counts.
        var sample = Volatile.Read(ref _sample);
        return sample == 0 ? 0 : sample + Math.Max(0, total - Volatile.Read(ref _usedAtSample));
    }

    private void Reclaim(Func<long>[] reclaimers)
    {
        var bytes = 0L;
        foreach (var reclaim in reclaimers)
        {
            bytes += reclaim();
        }

        Log.Reclaimed(_logger, bytes);
    }

    private string Describe()
    {
        var parts = new string[ComponentCount];
        for (var i = 0; i < ComponentCount; i++)
        {
            parts[i] = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{Tag((MemoryComponent)i)}={UsedBy((MemoryComponent)i)}");
        }

        return string.Join(' ', parts);
    }

    private static TaskCompletionSource Completed()
    {
        var done = new TaskCompletionSource();
        done.SetResult();
        return done;
    }

    // The component tag's values: fixed strings.
    private static string Tag(MemoryComponent component) => component switch
    {
        MemoryComponent.Queues => "queues",
        MemoryComponent.TopicHistory => "topic_history",
        MemoryComponent.Outboxes => "outboxes",
        MemoryComponent.Transactions => "transactions",
        _ => "partial_frames",
    };

    /// <summary>One waiting publisher, counted in <see cref="BlockedPublishers"/> until disposed.</summary>
    internal readonly struct BlockedPublisher(MemoryBudget budget) : IDisposable
    {
        public void Dispose() => Interlocked.Decrement(ref budget._blocked);
    }
}
