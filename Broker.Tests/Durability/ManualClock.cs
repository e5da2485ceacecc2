namespace Broker.Tests.Durability;

/// <summary>A clock the test moves by hand; starts at the current time, whole milliseconds (what the stores keep).</summary>
internal sealed class ManualClock : TimeProvider
{
    private long _nowMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(Interlocked.Read(ref _nowMs));

    public void Advance(TimeSpan by) => Interlocked.Add(ref _nowMs, (long)by.TotalMilliseconds);
}
