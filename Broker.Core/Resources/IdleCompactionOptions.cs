namespace Broker.Resources;

/// <summary>
/// Section <c>Broker:IdleCompaction</c>: one compacting full garbage collection once the broker has gone quiet
/// after activity, so that the holes a burst of connections left in the heap (about 5 KiB per connection, which
/// no collection compacts while the server is idle) go back to the operating system. Off unless enabled: the
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
    /// The free space the last collection left inside the heap (<see cref="GCMemoryInfo.FragmentedBytes"/>) must be at
    /// least this many bytes, and at least a tenth of the heap, for a compaction to be worth its pause.
    /// </summary>
    public long MinFragmentedBytes { get; set; } = 16 * 1024 * 1024;
}
