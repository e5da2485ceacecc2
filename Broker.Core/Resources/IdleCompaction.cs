using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Resources;

/// <summary>
/// Whether any session read or wrote a frame since the last look: sessions mark it, <see cref="IdleCompaction"/>
/// takes the mark. Marking only writes when the mark is clear, so on a busy node it is one read of a shared,
/// unchanging field per frame batch, and the field's cache line is not bounced between cores.
/// </summary>
internal sealed class BrokerActivity
{
    private int _marked;

    /// <summary>A session read or wrote a frame (not a heart-beat).</summary>
    public void Mark()
    {
        if (Volatile.Read(ref _marked) == 0)
        {
            Volatile.Write(ref _marked, 1);
        }
    }

    /// <summary>True when a frame was read or written since the last call; clears the mark.</summary>
    public bool Take() => Volatile.Read(ref _marked) != 0 && Interlocked.Exchange(ref _marked, 0) != 0;
}

/// <summary>What the garbage collector's last collection left: free space inside the heap, the heap's size (free space included), memory committed.</summary>
internal readonly record struct HeapState(long FragmentedBytes, long HeapSizeBytes, long CommittedBytes)
{
    /// <summary>Memory the GC keeps committed beyond the live objects (holes, the free part of the allocation budget): what a compaction can give back.</summary>
    public long ReclaimableBytes => Math.Max(0, CommittedBytes - (HeapSizeBytes - FragmentedBytes));
}

/// <summary>What one compaction did: the heap and the process's working set before and after, and how long it paused the process.</summary>
internal readonly record struct HeapCompaction(HeapState Before, HeapState After, long WorkingSetBefore, long WorkingSetAfter, TimeSpan Pause);

/// <summary>The garbage collector as <see cref="IdleCompaction"/> sees it (the tests give it another).</summary>
internal interface IHeapProbe
{
    /// <summary>The state the last collection left.</summary>
    HeapState Read();

    /// <summary>One blocking, compacting full collection that also gives free memory back to the operating system.</summary>
    HeapCompaction Compact();
}

internal sealed class GcHeapProbe : IHeapProbe
{
    public static readonly GcHeapProbe Instance = new();

    public HeapState Read() => From(GC.GetGCMemoryInfo());

    public HeapCompaction Compact()
    {
        var before = Read();
        var workingSetBefore = Environment.WorkingSet;
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        var info = GC.GetGCMemoryInfo(GCKind.FullBlocking);
        var pause = TimeSpan.Zero;
        foreach (var part in info.PauseDurations)
        {
            pause += part;
        }

        return new HeapCompaction(before, From(info), workingSetBefore, Environment.WorkingSet, pause);
    }

    private static HeapState From(GCMemoryInfo info) => new(info.FragmentedBytes, info.HeapSizeBytes, info.TotalCommittedBytes);
}

/// <summary>
/// Compacts the heap once the broker has gone quiet (<c>Broker:IdleCompaction</c>). A burst of connections leaves
/// holes in the older generations (the garbage of each upgrade, CONNECT and SUBSCRIBE between the objects that
/// stay), and an idle server allocates too little for any collection to compact them: they stay committed for as
/// long as the connections stay, and so does the free part of the GC's allocation budget. Quiet means that no
/// session read or wrote a frame (heart-beats are not frames) for <see cref="IdleCompactionOptions.QuietPeriod"/>,
/// which the process's allocation cannot tell: a busy broker allocates so little that it collects less often than
/// an idle one. Then, when the GC keeps at least <see cref="IdleCompactionOptions.MinReclaimableBytes"/> committed
/// beyond the live objects, and at least a tenth of what it has committed, one blocking compacting collection runs;
/// the next needs activity and a quiet period again, and <see cref="IdleCompactionOptions.MinInterval"/> since this
/// one. One timer, made at start when enabled.
/// </summary>
internal sealed class IdleCompaction : IHostedService, IDisposable
{
    private readonly TimeProvider _time;
    private readonly BrokerActivity _activity;
    private readonly IHeapProbe _heap;
    private readonly IdleCompactionOptions _options;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private ITimer? _timer;

    // Guarded by _gate (ticks do not overlap, but Dispose may race one).
    private long _lastActivity;
    private long _lastCompaction;
    private bool _compacted;
    private bool _armed;

    public IdleCompaction(TimeProvider time, BrokerActivity activity, IHeapProbe heap, IOptions<StompBrokerOptions> options, ILogger<IdleCompaction> logger)
        : this(time, activity, heap, options.Value.IdleCompaction, logger)
    {
    }

    internal IdleCompaction(TimeProvider time, BrokerActivity activity, IHeapProbe heap, IdleCompactionOptions options, ILogger logger)
    {
        _time = time;
        _activity = activity;
        _heap = heap;
        _options = options;
        _logger = logger;
        _lastActivity = time.GetTimestamp();
    }

    /// <summary>How often the timer looks at the activity mark: every second, or every quiet period when that is shorter.</summary>
    internal TimeSpan CheckInterval => _options.QuietPeriod < TimeSpan.FromSeconds(1) ? _options.QuietPeriod : TimeSpan.FromSeconds(1);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_options.Enabled)
        {
            lock (_gate)
            {
                _timer ??= _time.CreateTimer(static s => ((IdleCompaction)s!).Tick(), this, CheckInterval, CheckInterval);
            }
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _timer?.Dispose();
            _timer = null;
        }
    }

    /// <summary>One look: notes activity, or, after a quiet period that followed activity, compacts when the GC has enough to give back.</summary>
    internal void Tick()
    {
        try
        {
            lock (_gate)
            {
                if (_timer is null)
                {
                    return;
                }

                var now = _time.GetTimestamp();
                if (_activity.Take())
                {
                    _lastActivity = now;
                    _armed = true;
                    return;
                }

                if (!_armed
                    || _time.GetElapsedTime(_lastActivity, now) < _options.QuietPeriod
                    || (_compacted && _time.GetElapsedTime(_lastCompaction, now) < _options.MinInterval))
                {
                    return;
                }

                // Quiet since the last activity: this quiet spell gets one look at the heap, whatever it finds.
                _armed = false;
                var state = _heap.Read();
                if (state.ReclaimableBytes < _options.MinReclaimableBytes || state.ReclaimableBytes * 10 < state.CommittedBytes)
                {
                    Log.IdleCompactionSkipped(_logger, (long)_time.GetElapsedTime(_lastActivity, now).TotalMilliseconds, state.ReclaimableBytes, state.CommittedBytes, state.FragmentedBytes, _options.MinReclaimableBytes);
                    return;
                }

                var result = _heap.Compact();
                _compacted = true;
                _lastCompaction = _time.GetTimestamp();
                Log.IdleCompacted(_logger, (long)_time.GetElapsedTime(_lastActivity, now).TotalMilliseconds,
                    result.WorkingSetBefore - result.WorkingSetAfter, result.WorkingSetBefore, result.WorkingSetAfter,
                    result.Before.CommittedBytes, result.After.CommittedBytes, result.Before.FragmentedBytes, result.After.FragmentedBytes,
                    result.Pause.TotalMilliseconds);
            }
        }
        catch (Exception ex)
        {
            // On the timer's thread: an exception must not take the process down.
            Log.IdleCompactionFailed(_logger, ex);
        }
    }
}
