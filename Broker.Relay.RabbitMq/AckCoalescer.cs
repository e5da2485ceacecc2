namespace Broker.Relay.RabbitMq;

/// <summary>
/// Turns the acknowledgements of one consumer channel's deliveries into few <c>basic.ack</c> frames. The
/// channel is shared by many subscriptions, so AMQP's <c>multiple</c> flag (everything up to a tag) is safe
/// only up to the lowest delivery not yet settled: this tracks, from that point on, which tags are settled.
/// When the lowest ones are, one cumulative ack covers them all. An ack beyond a delivery still held (a
/// client-ack subscription waiting for its client) is sent on its own once it has waited
/// <see cref="StragglerDelay"/>, so no subscription's prefetch window waits on another's. Delivery tags of
/// a channel start at 1 and grow by one per delivery. Used by the link's single ack loop only.
/// </summary>
internal sealed class AckCoalescer
{
    /// <summary>How long an acknowledgement beyond an unsettled delivery may wait to join a cumulative one.</summary>
    public static readonly TimeSpan StragglerDelay = TimeSpan.FromMilliseconds(2);

    // Tags tracked past the lowest unsettled one; beyond it, acks go out one by one, untracked, until the
    // tracked range drains (see Recover).
    private const int MaxSpan = 1 << 20;

    private const byte Unsettled = 0;
    private const byte Acked = 1; // settled here, not yet sent
    private const byte Sent = 2; // settled and already sent on its own (an ack or a nack)

    private byte[] _states = new byte[1024]; // ring: tag t at (t - 1) & mask
    private ulong _base = 1; // the lowest tag not known to be settled
    private ulong _highest; // the highest tag tracked
    private ulong _settledCount; // distinct tags settled
    private int _pending; // Acked entries beyond _base
    private long _pendingSince;

    /// <summary>Acknowledgements waiting to join a cumulative one.</summary>
    public bool HasPending => _pending > 0;

    /// <summary>When the oldest waiting acknowledgement must go on its own (<see cref="Environment.TickCount64"/> ms).</summary>
    public long PendingDeadline => _pendingSince + (long)StragglerDelay.TotalMilliseconds;

    /// <summary>An ack of <paramref name="tag"/>. False when it cannot wait: the caller sends it on its own now.</summary>
    public bool TryAck(ulong tag)
    {
        _settledCount++;
        if (!Track(tag, Acked))
        {
            return false;
        }

        if (_pending++ == 0)
        {
            _pendingSince = Environment.TickCount64;
        }

        return true;
    }

    /// <summary>A nack of <paramref name="tag"/>, which the caller sends on its own (before any cumulative ack).</summary>
    public void Settled(ulong tag)
    {
        _settledCount++;
        Track(tag, Sent);
    }

    /// <summary>
    /// Moves past the settled tags at the bottom. Returns the tag a cumulative ack must name (0: none), which
    /// settles every tag up to it that was acked here; tags sent on their own before are already settled.
    /// <paramref name="latestDelivered"/> is the channel's latest delivery tag, read after the settlements
    /// passed in so far (so it is at least every tag settled).
    /// </summary>
    public ulong TakeCumulative(ulong latestDelivered)
    {
        ulong cumulative = 0;
        var mask = (ulong)_states.Length - 1;
        while (_base <= _highest && _states[(_base - 1) & mask] is var state and not Unsettled)
        {
            if (state == Acked)
            {
                cumulative = _base;
            }

            _states[(_base - 1) & mask] = Unsettled;
            _base++;
        }

        // Every acked entry below _base is covered: recount the ones still waiting.
        if (cumulative != 0)
        {
            _pending = 0;
            for (var t = _base; t <= _highest; t++)
            {
                if (_states[(t - 1) & mask] == Acked)
                {
                    _pending++;
                }
            }
        }

        Recover(latestDelivered);
        return cumulative;
    }

    /// <summary>Marks every waiting acknowledgement sent and returns them, to go out one by one.</summary>
    public List<ulong> TakeStragglers()
    {
        var tags = new List<ulong>(_pending);
        var mask = (ulong)_states.Length - 1;
        for (var t = _base; t <= _highest && tags.Count < _pending; t++)
        {
            ref var state = ref _states[(t - 1) & mask];
            if (state == Acked)
            {
                state = Sent;
                tags.Add(t);
            }
        }

        _pending = 0;
        return tags;
    }

    // After acks went out untracked (a long-held delivery made the range too wide), the bottom cannot move
    // past them; once every delivery so far is settled, nothing below the next one is open: start again there.
    private void Recover(ulong latestDelivered)
    {
        if (_base <= _highest || _settledCount != latestDelivered || latestDelivered < _base)
        {
            return;
        }

        _base = latestDelivered + 1;
        _highest = latestDelivered;
        _pending = 0;
        Array.Clear(_states);
    }

    private bool Track(ulong tag, byte state)
    {
        if (tag < _base)
        {
            return false; // not expected (each tag is settled once); sent on its own, harmlessly
        }

        var offset = tag - _base;
        if (offset >= MaxSpan)
        {
            return false;
        }

        if (offset >= (ulong)_states.Length)
        {
            Grow(offset + 1);
        }

        _states[(tag - 1) & ((ulong)_states.Length - 1)] = state;
        if (tag > _highest)
        {
            _highest = tag;
        }

        return true;
    }

    private void Grow(ulong span)
    {
        var size = _states.Length;
        while ((ulong)size < span)
        {
            size *= 2;
        }

        var states = new byte[size];
        var oldMask = (ulong)_states.Length - 1;
        var newMask = (ulong)size - 1;
        for (var t = _base; t <= _highest; t++)
        {
            states[(t - 1) & newMask] = _states[(t - 1) & oldMask];
        }

        _states = states;
    }
}
