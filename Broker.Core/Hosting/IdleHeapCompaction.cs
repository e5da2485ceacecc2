using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Broker.Hosting;

/// <summary>
/// Gives back the heap a burst of connections leaves behind once the server falls idle. Opening a
/// connection makes short-lived garbage (the HTTP upgrade, CONNECT and SUBSCRIBE buffers) among the
/// objects the connection keeps; the GCs during the burst promote both, and the garbage becomes holes
/// in gen1/gen2 between live connection objects. Measured at 5,000 idle WebSockets: about 5 KiB per
/// connection of such holes, committed, and an idle process allocates nothing, so no GC ever comes to
/// compact them. Every <see cref="CheckInterval"/>, when the process has allocated less than
/// <see cref="IdleAllocationBytes"/> since the previous check and the last GC left more than
/// <see cref="FragmentationBytes"/> of holes, one aggressive compacting GC (which also decommits the
/// freed memory) runs, once per such GC: its pause (tens of milliseconds for a heap of 100 MB) falls
/// on an idle server.
/// </summary>
/// <param name="fragmentationBytes">The holes worth a compaction (tests lower it; default <see cref="FragmentationBytes"/>).</param>
internal sealed partial class IdleHeapCompaction(TimeProvider time, ILogger<IdleHeapCompaction> logger, long fragmentationBytes = IdleHeapCompaction.FragmentationBytes)
    : IHostedService, IDisposable
{
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(5);
    public const long IdleAllocationBytes = 1024 * 1024;
    public const long FragmentationBytes = 16 * 1024 * 1024;

    private ITimer? _timer;
    private long _allocatedAtLastCheck = GC.GetTotalAllocatedBytes();
    private long _compactedAfterGc = -1;
    private int _checking;

    /// <summary>Compactions done (for tests and logs).</summary>
    public int Compactions { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _timer = time.CreateTimer(_ => Check(), null, CheckInterval, CheckInterval);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _timer?.Dispose();
        return Task.CompletedTask;
    }

    public void Dispose() => _timer?.Dispose();

    internal void Check()
    {
        if (Interlocked.Exchange(ref _checking, 1) == 1)
        {
            return;
        }

        try
        {
            var allocated = GC.GetTotalAllocatedBytes();
            var sinceLastCheck = allocated - _allocatedAtLastCheck;
            _allocatedAtLastCheck = allocated;
            var last = GC.GetGCMemoryInfo(GCKind.Any);
            if (sinceLastCheck >= IdleAllocationBytes || last.FragmentedBytes < fragmentationBytes || last.Index == _compactedAfterGc)
            {
                return;
            }

            var committedBefore = last.TotalCommittedBytes;
            var started = time.GetTimestamp();
            GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            var after = GC.GetGCMemoryInfo(GCKind.Any);
            _compactedAfterGc = after.Index;
            _allocatedAtLastCheck = GC.GetTotalAllocatedBytes();
            Compactions++;
            Compacted(logger, last.FragmentedBytes / 1024, (committedBefore - after.TotalCommittedBytes) / 1024, time.GetElapsedTime(started).TotalMilliseconds);
        }
        finally
        {
            Volatile.Write(ref _checking, 0);
        }
    }

    [LoggerMessage(130, LogLevel.Information, "Idle: compacted the heap ({FragmentedKiB} KiB of holes left by earlier work; {FreedKiB} KiB of committed memory given back; {PauseMs:0} ms pause)")]
    private static partial void Compacted(ILogger logger, long fragmentedKiB, long freedKiB, double pauseMs);
}
