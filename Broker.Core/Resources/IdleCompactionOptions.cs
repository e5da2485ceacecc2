namespace Broker.Resources;

/// <summary>
/// Section <c>Broker:IdleCompaction</c>: one compacting full garbage collection once the broker has gone quiet
/// after activity, so that what the GC keeps committed beyond the live objects after a burst of connections (the holes
/// their garbage left, about 5 KiB per connection, and the free allocation budget) goes back to the operating system. Off unless enabled: the
/// executable enables it in its <c>appsettings.json</c>; an app embedding the broker decides for itself, as the
/// broker cannot see the app's own traffic.
/// </summary>
public sealed class IdleCompactionOptions
{
    /// <summary>Whether the broker compacts the heap when it is idle.</summary>
    public bool Enabled { get; set; }

    /// <summary>How long no session may read or write a frame (heart-beats do not count) before the heap is compacted.</summary>
    public TimeSpan QuietPeriod { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The least time between two compactions; and after one, the next needs activity and a quiet period again.</summary>
    public TimeSpan MinInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The memory the GC keeps committed beyond the live objects after its last collection (the holes between them and
    /// the free part of its allocation budget) must be at least this many bytes, and at least a tenth of what it has
    /// committed, for a compaction to be worth its pause.
    /// </summary>
    public long MinReclaimableBytes { get; set; } = 8 * 1024 * 1024;
}
