using Broker.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace Broker.Tests.Hosting;

/// <summary>
/// The heap a burst leaves behind (holes between long-lived objects, which no GC visits while the process
/// allocates nothing) is compacted once the process is idle, and not while it is busy.
/// </summary>
[TestFixture]
[NonParallelizable] // it reads and forces process-wide GC state
public sealed class IdleHeapCompactionTests
{
    private List<byte[]>? _survivors;

    [TearDown]
    public void TearDown() => _survivors = null;

    // Well below the holes Fragment() makes (tens of MiB), so the GC's own choices cannot hide them.
    private const long Threshold = 4 * 1024 * 1024;

    [Test]
    public async Task An_idle_process_with_a_fragmented_heap_is_compacted_once()
    {
        var time = new FakeTimeProvider();
        using var compaction = new IdleHeapCompaction(time, NullLogger<IdleHeapCompaction>.Instance, Threshold);
        await compaction.StartAsync(CancellationToken.None);
        Fragment();
        Assert.That(GC.GetGCMemoryInfo(GCKind.Any).FragmentedBytes, Is.GreaterThan(Threshold), "precondition: the heap has holes");

        time.Advance(IdleHeapCompaction.CheckInterval); // the check after the burst: it allocated, so not idle
        Assert.That(compaction.Compactions, Is.Zero);
        time.Advance(IdleHeapCompaction.CheckInterval); // nothing allocated since: idle
        Assert.That(compaction.Compactions, Is.EqualTo(1));
        Assert.That(GC.GetGCMemoryInfo(GCKind.Any).FragmentedBytes, Is.LessThan(Threshold));
        time.Advance(IdleHeapCompaction.CheckInterval);
        Assert.That(compaction.Compactions, Is.EqualTo(1), "no second compaction without a new GC");
        GC.KeepAlive(_survivors);
    }

    [Test]
    public async Task A_busy_process_is_not_compacted()
    {
        var time = new FakeTimeProvider();
        using var compaction = new IdleHeapCompaction(time, NullLogger<IdleHeapCompaction>.Instance, Threshold);
        await compaction.StartAsync(CancellationToken.None);
        Fragment();
        for (var i = 0; i < 3; i++)
        {
            Fragment(); // allocates far more than IdleAllocationBytes between checks
            time.Advance(IdleHeapCompaction.CheckInterval);
        }

        Assert.That(compaction.Compactions, Is.Zero);
        GC.KeepAlive(_survivors);
    }

    // Many small arrays promoted to gen2 together, then every other one dropped and a sweeping full GC: holes in gen2.
    private void Fragment()
    {
        var all = new List<byte[]>(400_000);
        for (var i = 0; i < 400_000; i++)
        {
            all.Add(new byte[200]);
        }

        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        _survivors = [];
        for (var i = 0; i < all.Count; i += 2)
        {
            _survivors.Add(all[i]);
        }

        all.Clear();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: false);
    }
}
