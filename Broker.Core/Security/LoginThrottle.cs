using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Broker.Security;

/// <summary>How <see cref="LoginThrottle.BeginAsync"/> ends.</summary>
internal enum ThrottleOutcome
{
    /// <summary>Check the passcode (after <see cref="ThrottleVerdict.Delay"/>), then report the result.</summary>
    Admitted,

    /// <summary>The login or address reached its failure limit: refused unchecked for <see cref="ThrottleVerdict.RetryAfter"/>.</summary>
    LockedOut,

    /// <summary>The login or address already had <see cref="LoginThrottlingOptions.MaxWaitingAttempts"/> attempts waiting for a turn.</summary>
    TooManyWaiting,

    /// <summary>The attempt waited the longest wait it was given for a turn.</summary>
    WaitTimedOut,
}

/// <summary>What <see cref="LoginThrottle.BeginAsync"/> says about an attempt.</summary>
/// <param name="Outcome">Admitted, or why not.</param>
/// <param name="Delay">When admitted: wait this long before checking the passcode.</param>
/// <param name="RetryAfter">When locked out: how long the refusal lasts.</param>
internal readonly record struct ThrottleVerdict(ThrottleOutcome Outcome, TimeSpan Delay, TimeSpan RetryAfter)
{
    public bool Refused => Outcome != ThrottleOutcome.Admitted;
}

/// <summary>
/// The failed-login table: one entry per client address and per login, bounded by
/// <see cref="LoginThrottlingOptions.MaxTrackedEntries"/> (least recently seen forgotten first).
/// Only a passcode check that fails counts as a failure. So that attempts run in parallel gain nothing
/// over attempts run one after the other, an attempt starts only where the serial rules would let it start
/// even if every attempt still in flight for its keys failed: while that worst case is under
/// <see cref="LoginThrottlingOptions.FreeAttempts"/> (and under the failure limit) it starts at once;
/// otherwise it starts alone, after the delay its key's confirmed failures earn. Attempts that may not start
/// yet wait (asynchronously, at most <see cref="LoginThrottlingOptions.MaxWaitingAttempts"/> per key and at
/// most the wait they are given) in their key's queue, first come first: an attempt that ends hands its turn to
/// the first waiting one (checked once, under the lock, so nobody arriving meanwhile takes it), not to all of
/// them, so n waiting attempts cost n checks, not n². Locked only for table updates (never across an await);
/// time comes from the injected <see cref="TimeProvider"/>.
/// </summary>
internal sealed class LoginThrottle
{
    /// <summary>Logins longer than this are tracked by their SHA-256, so a long login costs an entry no more than a short one.</summary>
    private const int MaxLoginKeyLength = 128;

    private readonly LoginThrottlingOptions _options;
    private readonly TimeProvider _time;
    private readonly SecurityMetrics? _metrics;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, LinkedListNode<Entry>> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _byLastSeen = new();

    public LoginThrottle(LoginThrottlingOptions options, TimeProvider time, SecurityMetrics? metrics = null)
    {
        if (options.MaxTrackedEntries < 2 || options.FreeAttempts < 0 || options.MaxFailuresPerLogin < 1 || options.MaxFailuresPerAddress < 1 ||
            options.BaseDelay < TimeSpan.Zero || options.MaxDelay < options.BaseDelay || options.MaxWaitingAttempts < 0)
        {
            throw new InvalidOperationException(
                "Broker:LoginThrottling: MaxTrackedEntries must be at least 2, FreeAttempts 0 or more, MaxFailuresPerLogin and MaxFailuresPerAddress at least 1, MaxWaitingAttempts 0 or more, and 0 <= BaseDelay <= MaxDelay");
        }

        _options = options;
        _time = time;
        _metrics = metrics;
    }

    /// <summary>Entries tracked now (never more than <see cref="LoginThrottlingOptions.MaxTrackedEntries"/>).</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    public static string? AddressKey(IPAddress? address)
    {
        if (address is null)
        {
            return null;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return "address " + address;
        }

        // One host usually holds a whole /64: count it as one address.
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return $"address {new IPAddress(bytes)}/64";
    }

    public static string LoginKey(string login) => login.Length <= MaxLoginKeyLength
        ? "login '" + login + "'"
        : "login sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(login)));

    /// <summary>
    /// Starts an attempt: locked out, or admitted (with the delay to wait first) once the keys' attempts in flight
    /// allow it, or refused because too many wait already or it waited <paramref name="maxWait"/>. An admitted
    /// attempt must end with <see cref="Succeeded"/>, <see cref="Failed"/> or <see cref="Abandoned"/>.
    /// </summary>
    public async ValueTask<ThrottleVerdict> BeginAsync(string? addressKey, string loginKey, TimeSpan maxWait, CancellationToken cancellationToken = default)
    {
        var started = _time.GetTimestamp();
        while (true)
        {
            Waiter waiter;
            lock (_gate)
            {
                if (TryStart(addressKey, loginKey, _time.GetTimestamp(), handingOff: null, out var blocker) is { } verdict)
                {
                    return verdict;
                }

                waiter = new Waiter(addressKey, loginKey);
                if (!TryQueue(blocker!, waiter))
                {
                    return new ThrottleVerdict(ThrottleOutcome.TooManyWaiting, TimeSpan.Zero, TimeSpan.Zero);
                }
            }

            var left = maxWait - _time.GetElapsedTime(started);
            ThrottleVerdict? handed;
            try
            {
                handed = await waiter.Turn.Task.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is TimeoutException or OperationCanceledException)
            {
                lock (_gate)
                {
                    // Under the lock a turn is either still to come (then the attempt leaves its queue) or already handed over.
                    handed = waiter.Turn.Task.IsCompleted ? waiter.Turn.Task.Result : null;
                    if (!waiter.Turn.Task.IsCompleted)
                    {
                        Dequeue(waiter);
                    }
                    else if (handed is { Outcome: ThrottleOutcome.Admitted } && e is OperationCanceledException)
                    {
                        EndLocked(addressKey, loginKey);
                    }
                }

                if (e is OperationCanceledException)
                {
                    throw;
                }

                // A turn handed over just as the wait ran out still counts.
                return handed ?? new ThrottleVerdict(ThrottleOutcome.WaitTimedOut, TimeSpan.Zero, TimeSpan.Zero);
            }

            if (handed is { } turn)
            {
                return turn;
            }

            // The entry it waited on was forgotten (the table was full): ask again.
        }
    }

    /// <summary>The admitted attempt's passcode was right: the login starts from zero; the address keeps its failures.</summary>
    public void Succeeded(string? addressKey, string loginKey)
    {
        lock (_gate)
        {
            var login = Find(loginKey);
            var address = Find(addressKey);
            if (login is not null)
            {
                login.InFlight = Math.Max(0, login.InFlight - 1);
                login.Failures = 0;
                login.LockedUntil = 0;
            }

            if (address is not null)
            {
                address.InFlight = Math.Max(0, address.InFlight - 1);
            }

            HandOff(login);
            HandOff(address);
        }
    }

    /// <summary>The admitted attempt's passcode was wrong: counts a failure against both keys; returns the keys it locked.</summary>
    public IReadOnlyList<(string Key, int Failures)>? Failed(string? addressKey, string loginKey)
    {
        var now = _time.GetTimestamp();
        lock (_gate)
        {
            List<(string, int)>? locked = null;
            Span<Entry?> ended = [null, null];
            var i = 0;
            foreach (var key in (ReadOnlySpan<string?>)[addressKey, loginKey])
            {
                if (key is null)
                {
                    continue;
                }

                // Touched again (re-added if the table forgot it meanwhile): a failure is never lost.
                var entry = Touch(key, now, isAddress: key == addressKey);
                entry.InFlight = Math.Max(0, entry.InFlight - 1);
                entry.Failures++;
                entry.LastFailure = now;
                if (entry.Failures >= MaxFailures(entry))
                {
                    entry.LockedUntil = now + ToTimestamp(_options.LockoutDuration);
                    (locked ??= []).Add((entry.Key, entry.Failures));
                }

                ended[i++] = entry;
            }

            // The turns go on only once the failure is counted: the next attempt's delay, or its lockout, follows from it.
            HandOff(ended[0]);
            HandOff(ended[1]);
            return locked;
        }
    }

    /// <summary>The admitted attempt ended without a verdict (the authenticator threw): its turn ends, nothing is counted.</summary>
    public void Abandoned(string? addressKey, string loginKey)
    {
        lock (_gate)
        {
            EndLocked(addressKey, loginKey);
        }
    }

    /// <summary>Attempts checked against the table: once when each begins, and once per turn handed to one that waited.</summary>
    internal long StartChecks { get; private set; }

    // Under _gate: an admitted attempt's turn ends without a verdict.
    private void EndLocked(string? addressKey, string loginKey)
    {
        var login = Find(loginKey);
        var address = Find(addressKey);
        foreach (var entry in (ReadOnlySpan<Entry?>)[login, address])
        {
            if (entry is not null)
            {
                entry.InFlight = Math.Max(0, entry.InFlight - 1);
            }
        }

        HandOff(login);
        HandOff(address);
    }

    // Admits or refuses the attempt, or names the entry it must wait for (null verdict). An attempt waits behind
    // those already waiting for a key, except on the key whose turn is being handed to it (handingOff).
    private ThrottleVerdict? TryStart(string? addressKey, string loginKey, long now, Entry? handingOff, out Entry? blocked)
    {
        StartChecks++;
        blocked = null;

        // A refused attempt tests no passcode: it counts nothing and adds no login entry.
        var address = addressKey is null ? null : Touch(addressKey, now, isAddress: true);
        if (address is not null && address.LockedUntil > now)
        {
            return new ThrottleVerdict(ThrottleOutcome.LockedOut, TimeSpan.Zero, _time.GetElapsedTime(now, address.LockedUntil));
        }

        var login = Touch(loginKey, now, isAddress: false);
        if (login.LockedUntil > now)
        {
            return new ThrottleVerdict(ThrottleOutcome.LockedOut, TimeSpan.Zero, _time.GetElapsedTime(now, login.LockedUntil));
        }

        blocked = address is not null && !MayStart(address, handingOff) ? address : !MayStart(login, handingOff) ? login : null;
        if (blocked is not null)
        {
            return null;
        }

        // The delay the serial attempt after the worst case would wait (0 unless it starts alone).
        var delay = DelayAfter(login.Failures + login.InFlight);
        if (address is not null)
        {
            var wait = DelayAfter(address.Failures + address.InFlight);
            delay = wait > delay ? wait : delay;
            address.InFlight++;
        }

        login.InFlight++;
        return new ThrottleVerdict(ThrottleOutcome.Admitted, delay, TimeSpan.Zero);
    }

    // Whether one more attempt may start on the entry now: none waits ahead of it, and the entry has room.
    private bool MayStart(Entry entry, Entry? handingOff) => (entry == handingOff || entry.Waiters is not { Count: > 0 }) && HasRoom(entry);

    // Alone, an attempt may always start (after its delay); beside others only while even all of them failing stays free and under the limit.
    private bool HasRoom(Entry entry) =>
        entry.InFlight == 0 || entry.Failures + entry.InFlight < Math.Min(_options.FreeAttempts, MaxFailures(entry));

    private int MaxFailures(Entry entry) => entry.IsAddress ? _options.MaxFailuresPerAddress : _options.MaxFailuresPerLogin;

    private Entry? Find(string? key) => key is not null && _entries.TryGetValue(key, out var node) ? node.Value : null;

    // Under _gate: one of the entry's attempts ended, so its room may let the first waiting ones start. Each is
    // checked once: admitted or refused (its turn handed over at once, so nobody arriving meanwhile can take it),
    // or moved to the queue of its other key, which is full now; the rest wait on, untouched. Linear overall.
    // An entry only has waiters while it has attempts in flight, so an ending attempt always comes to hand them on.
    private void HandOff(Entry? entry)
    {
        while (entry?.Waiters is { First: { } first } && HasRoom(entry))
        {
            var waiter = first.Value;
            Dequeue(waiter);
            if (TryStart(waiter.AddressKey, waiter.LoginKey, _time.GetTimestamp(), handingOff: entry, out var blocked) is { } verdict)
            {
                waiter.Turn.TrySetResult(verdict);
            }
            else if (!TryQueue(blocked!, waiter))
            {
                waiter.Turn.TrySetResult(new ThrottleVerdict(ThrottleOutcome.TooManyWaiting, TimeSpan.Zero, TimeSpan.Zero));
            }
        }
    }

    // Under _gate: at the back of the entry's queue, unless MaxWaitingAttempts wait there already.
    private bool TryQueue(Entry entry, Waiter waiter)
    {
        var waiters = entry.Waiters ??= new LinkedList<Waiter>();
        if (waiters.Count >= _options.MaxWaitingAttempts)
        {
            return false;
        }

        waiters.AddLast(waiter.Node);
        waiter.Queue = entry;
        return true;
    }

    private static void Dequeue(Waiter waiter)
    {
        if (waiter.Queue is { } entry)
        {
            entry.Waiters!.Remove(waiter.Node);
            waiter.Queue = null;
        }
    }

    // Under _gate: the entry is forgotten; whoever waited for it asks again (a null turn).
    private static void Forget(Entry entry)
    {
        if (entry.Waiters is not { } waiters)
        {
            return;
        }

        while (waiters.First is { } first)
        {
            Dequeue(first.Value);
            first.Value.Turn.TrySetResult(null);
        }
    }

    /// <summary>The wait before an attempt, after <paramref name="failures"/> earlier failures: 0 up to FreeAttempts, then doubling from BaseDelay, at most MaxDelay.</summary>
    public TimeSpan DelayAfter(int failures)
    {
        if (failures < _options.FreeAttempts)
        {
            return TimeSpan.Zero;
        }

        var doublings = Math.Min(failures - _options.FreeAttempts, 30);
        var delay = _options.BaseDelay * (1L << doublings);
        return delay > _options.MaxDelay ? _options.MaxDelay : delay;
    }

    // Finds or adds the key's entry, as the most recently seen; forgets what the window has passed.
    private Entry Touch(string key, long now, bool isAddress)
    {
        var window = ToTimestamp(_options.Window);
        if (_entries.TryGetValue(key, out var node))
        {
            _byLastSeen.Remove(node);
            _byLastSeen.AddLast(node);
        }
        else
        {
            // Entries nobody failed with for a window (and not locked) are worth nothing: drop them first.
            while (_byLastSeen.First is { } oldest && now - oldest.Value.LastFailure > window && oldest.Value.LockedUntil <= now)
            {
                _byLastSeen.RemoveFirst();
                _entries.Remove(oldest.Value.Key);
                Forget(oldest.Value);
            }

            if (_entries.Count >= _options.MaxTrackedEntries)
            {
                var evicted = _byLastSeen.First!;
                _byLastSeen.RemoveFirst();
                _entries.Remove(evicted.Value.Key);
                Forget(evicted.Value);
                _metrics?.ThrottleEntryEvicted();
                EvictedCount++;
            }

            node = _byLastSeen.AddLast(new Entry(key, isAddress) { LastFailure = now });
            _entries.Add(key, node);
        }

        var entry = node.Value;
        if (now - entry.LastFailure > window && entry.LockedUntil <= now)
        {
            entry.Failures = 0;
        }

        return entry;
    }

    /// <summary>Entries forgotten because the table was full (also the <c>broker.auth.throttle.evicted</c> counter).</summary>
    public long EvictedCount { get; private set; }

    private long ToTimestamp(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    private sealed class Entry(string key, bool isAddress)
    {
        public string Key { get; } = key;

        public bool IsAddress { get; } = isAddress;

        public int Failures { get; set; }

        public long LastFailure { get; set; }

        public long LockedUntil { get; set; }

        /// <summary>Admitted attempts not yet ended.</summary>
        public int InFlight { get; set; }

        /// <summary>Attempts waiting for one in flight to end, first come first (at most MaxWaitingAttempts); made on the first.</summary>
        public LinkedList<Waiter>? Waiters { get; set; }
    }

    // An attempt waiting for a turn: in one entry's queue at a time, until its turn (a verdict) is handed to it.
    private sealed class Waiter
    {
        public Waiter(string? addressKey, string loginKey)
        {
            AddressKey = addressKey;
            LoginKey = loginKey;
            Node = new LinkedListNode<Waiter>(this);
        }

        public string? AddressKey { get; }

        public string LoginKey { get; }

        public LinkedListNode<Waiter> Node { get; }

        /// <summary>The queue it is in; null once its turn came.</summary>
        public Entry? Queue { get; set; }

        /// <summary>Its turn: the verdict, or null when the entry it waited for was forgotten and it must ask again.</summary>
        public TaskCompletionSource<ThrottleVerdict?> Turn { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
