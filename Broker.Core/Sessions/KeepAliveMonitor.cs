using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Broker.Sessions;

/// <summary>
/// The one clock and timer of all sessions (as Kestrel's Heartbeat and MQTTnet's keep-alive monitor): it
/// drives heart-beats out, heart-beat timeouts in, the connect timeout, the send timeout and the durable-session
/// touch. Sessions are filed in a timer wheel by their next deadline, so a tick visits only the sessions
/// due in it: an idle session without heart-beats is not visited at all, one with heart-beats once per
/// interval. The one timer is armed for the next slot that holds a session, so with nothing due the process
/// does not wake up. Deadlines move lazily: a read or a write does not reschedule; the visit finds the
/// deadline moved and files the session again. Time comes from the injected <see cref="TimeProvider"/>.
/// </summary>
internal sealed class KeepAliveMonitor : IHostedService, IDisposable
{
    /// <summary>"No deadline": the session needs no visit.</summary>
    public const long Never = long.MaxValue;

    // 512 slots of at most 250 ms: two minutes ahead; a later deadline is filed at the end and filed again from there.
    private const int SlotCount = 512;

    private readonly TimeProvider _time;
    private readonly long _timestampsPerMs;
    private readonly List<StompSession>[] _slots = new List<StompSession>[SlotCount];
    private readonly Lock _gate = new();

    // Only the tick uses these (ticks never overlap: see _ticking).
    private readonly List<StompSession> _due = [];
    private int _ticking;

    private long _processedUntil;
    private long _armedFor = Never;
    private int _filed;
    private ITimer? _timer;
    private bool _stopped;

    public KeepAliveMonitor(TimeProvider time, IOptions<StompBrokerOptions> options)
    {
        _time = time;
        _timestampsPerMs = Math.Max(1, time.TimestampFrequency / 1000);
        TickMs = ChooseTick(options.Value);
        _processedUntil = ReadClock() / TickMs * TickMs;
        for (var i = 0; i < SlotCount; i++)
        {
            _slots[i] = [];
        }
    }

    public TimeProvider Time => _time;

    /// <summary>The wheel's resolution: deadlines are met within one tick.</summary>
    public long TickMs { get; }

    /// <summary>The time now, in milliseconds (from <see cref="Time"/>): what sessions stamp reads, writes and flushes with.</summary>
    public long NowMs() => ReadClock();

    /// <summary>Files <paramref name="session"/> to be visited at <paramref name="dueMs"/>, unless it is already due earlier.</summary>
    public void Schedule(StompSession session, long dueMs)
    {
        if (dueMs == Never)
        {
            return;
        }

        lock (_gate)
        {
            ref var entry = ref session.KeepAliveEntry;
            if (entry.Slot >= 0)
            {
                if (entry.Due <= dueMs)
                {
                    return;
                }

                RemoveLocked(ref entry);
            }

            // Never in a slot already passed; never beyond the wheel (filed at its end and filed again from there).
            var slotTime = Math.Clamp((dueMs + TickMs - 1) / TickMs * TickMs, _processedUntil + TickMs, _processedUntil + ((SlotCount - 1) * TickMs));
            entry.Slot = (int)(slotTime / TickMs % SlotCount);
            var slot = _slots[entry.Slot];
            entry.Position = slot.Count;
            Volatile.Write(ref entry.Due, dueMs);
            slot.Add(session);
            _filed++;
            if (slotTime < _armedFor)
            {
                ArmLocked(slotTime);
            }
        }
    }

    /// <summary>Takes a closed session out of the wheel.</summary>
    public void Remove(StompSession session)
    {
        lock (_gate)
        {
            ref var entry = ref session.KeepAliveEntry;
            if (entry.Slot >= 0)
            {
                RemoveLocked(ref entry);
            }
        }
    }

    /// <summary>One tick: visits every session whose slot has come, then arms the timer for the next filled slot.</summary>
    internal void Tick()
    {
        if (Interlocked.Exchange(ref _ticking, 1) != 0)
        {
            return; // the running tick arms the timer again when it ends
        }

        try
        {
            var now = ReadClock();
            lock (_gate)
            {
                _armedFor = Never;
                var target = now / TickMs * TickMs;
                var steps = Math.Min((target - _processedUntil) / TickMs, SlotCount);
                for (var i = 1; i <= steps; i++)
                {
                    var slot = _slots[(int)(((_processedUntil / TickMs) + i) % SlotCount)];
                    _filed -= slot.Count;
                    foreach (var session in slot)
                    {
                        session.KeepAliveEntry.Slot = -1;
                        Volatile.Write(ref session.KeepAliveEntry.Due, Never);
                        _due.Add(session);
                    }

                    slot.Clear();
                }

                _processedUntil = Math.Max(_processedUntil, target);
            }

            foreach (var session in _due)
            {
                Schedule(session, session.OnKeepAlive(now));
            }
        }
        finally
        {
            _due.Clear();
            Volatile.Write(ref _ticking, 0);
            lock (_gate)
            {
                ArmLocked(NextFilledSlotLocked());
            }
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopped = true;
            _timer?.Dispose();
            _timer = null;
        }
    }

    // The timer is one-shot, armed for the slot time the next visit is due at; never for the past, so a fake
    // clock never fires it from inside this call. Made on first use; stopped with the host.
    private void ArmLocked(long slotTime)
    {
        if (_stopped || slotTime == _armedFor || (slotTime == Never && _timer is null))
        {
            return;
        }

        _timer ??= _time.CreateTimer(static s => ((KeepAliveMonitor)s!).Tick(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _armedFor = slotTime;
        _timer.Change(slotTime == Never ? Timeout.InfiniteTimeSpan : TimeSpan.FromMilliseconds(Math.Max(1, slotTime - ReadClock())), Timeout.InfiniteTimeSpan);
    }

    private long NextFilledSlotLocked()
    {
        if (_filed == 0)
        {
            return Never;
        }

        for (var i = 1; i <= SlotCount; i++)
        {
            var slotTime = _processedUntil + (i * TickMs);
            if (_slots[(int)(slotTime / TickMs % SlotCount)].Count > 0)
            {
                return slotTime;
            }
        }

        return Never;
    }

    private void RemoveLocked(ref KeepAliveEntry entry)
    {
        var slot = _slots[entry.Slot];
        var last = slot[^1];
        slot[entry.Position] = last;
        last.KeepAliveEntry.Position = entry.Position;
        slot.RemoveAt(slot.Count - 1);
        _filed--;
        entry.Slot = -1;
        Volatile.Write(ref entry.Due, Never);
    }

    private long ReadClock() => _time.GetTimestamp() / _timestampsPerMs;

    // A quarter of the shortest heart-beat interval the server may run (HeartbeatMinimum, or a configured
    // default below it), between 10 and 250 ms: a heart-beat is sent within a quarter interval of when it is due.
    private static long ChooseTick(StompBrokerOptions options)
    {
        var shortest = options.HeartbeatMinimum.TotalMilliseconds;
        foreach (var configured in (ReadOnlySpan<TimeSpan>)[options.HeartbeatSend, options.HeartbeatReceive])
        {
            if (configured > TimeSpan.Zero)
            {
                shortest = Math.Min(shortest, configured.TotalMilliseconds);
            }
        }

        return Math.Clamp((long)(shortest / 4), 10, 250);
    }
}

/// <summary>Where a session is filed in the <see cref="KeepAliveMonitor"/>'s wheel; guarded by the monitor's lock.</summary>
internal struct KeepAliveEntry
{
    public int Slot;
    public int Position;
    public long Due;

    public static KeepAliveEntry None => new() { Slot = -1, Due = KeepAliveMonitor.Never };
}
