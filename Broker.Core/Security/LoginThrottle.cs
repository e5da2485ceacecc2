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
/// most the wait they are given) for one in flight to end. Locked only for table updates (never across an
/// await); time comes from the injected <see cref="TimeProvider"/>.
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
            TaskCompletionSource turn;
            Entry blocker;
            lock (_gate)
            {
                if (TryStart(addressKey, loginKey, _time.GetTimestamp(), out var blocked) is { } verdict)
                {
                    return verdict;
                }

                blocker = blocked!;
                if (blocker.Waiters.Count >= _options.MaxWaitingAttempts)
                {
                    return new ThrottleVerdict(ThrottleOutcome.TooManyWaiting, TimeSpan.Zero, TimeSpan.Zero);
                }

                turn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                blocker.Waiters.Add(turn);
            }

            var left = maxWait - _time.GetElapsedTime(started);
            try
            {
                await turn.Task.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is TimeoutException or OperationCanceledException)
            {
                lock (_gate)
                {
                    blocker.Waiters.Remove(turn);
                }

                if (e is TimeoutException)
                {
                    return new ThrottleVerdict(ThrottleOutcome.WaitTimedOut, TimeSpan.Zero, TimeSpan.Zero);
                }

                throw;
            }
        }
    }

    /// <summary>The admitted attempt's passcode was right: the login starts from zero; the address keeps its failures.</summary>
    public void Succeeded(string? addressKey, string loginKey)
    {
        lock (_gate)
        {
            if (Ended(loginKey) is { } login)
            {
                login.Failures = 0;
                login.LockedUntil = 0;
            }

            Ended(addressKey);
        }
    }

    /// <summary>The admitted attempt's passcode was wrong: counts a failure against both keys; returns the keys it locked.</summary>
    public IReadOnlyList<(string Key, int Failures)>? Failed(string? addressKey, string loginKey)
    {
        var now = _time.GetTimestamp();
        lock (_gate)
        {
            List<(string, int)>? locked = null;
            foreach (var key in (ReadOnlySpan<string?>)[addressKey, loginKey])
            {
                if (key is null)
                {
                    continue;
                }

                // Touched again (re-added if the table forgot it meanwhile): a failure is never lost.
                var entry = Touch(key, now, isAddress: key == addressKey);
                Release(entry);
                entry.Failures++;
                entry.LastFailure = now;
                if (entry.Failures >= MaxFailures(entry))
                {
                    entry.LockedUntil = now + ToTimestamp(_options.LockoutDuration);
                    (locked ??= []).Add((entry.Key, entry.Failures));
                }
            }

            return locked;
        }
    }

    /// <summary>The admitted attempt ended without a verdict (the authenticator threw): its turn ends, nothing is counted.</summary>
    public void Abandoned(string? addressKey, string loginKey)
    {
        lock (_gate)
        {
            Ended(loginKey);
            Ended(addressKey);
        }
    }

    // Admits or refuses the attempt, or names the entry it must wait for (null verdict).
    private ThrottleVerdict? TryStart(string? addressKey, string loginKey, long now, out Entry? blocked)
    {
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

        blocked = address is not null && !MayStart(address) ? address : !MayStart(login) ? login : null;
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

    // Alone, an attempt may always start (after its delay); beside others only while even all of them failing stays free and under the limit.
    private bool MayStart(Entry entry) =>
        entry.InFlight == 0 || entry.Failures + entry.InFlight < Math.Min(_options.FreeAttempts, MaxFailures(entry));

    private int MaxFailures(Entry entry) => entry.IsAddress ? _options.MaxFailuresPerAddress : _options.MaxFailuresPerLogin;

    private Entry? Ended(string? key)
    {
        if (key is null || !_entries.TryGetValue(key, out var node))
        {
            return null;
        }

        Release(node.Value);
        return node.Value;
    }

    // One attempt of the entry's ended: everyone waiting for it tries again.
    private static void Release(Entry entry)
    {
        entry.InFlight = Math.Max(0, entry.InFlight - 1);
        WakeWaiters(entry);
    }

    private static void WakeWaiters(Entry entry)
    {
        foreach (var waiter in entry.Waiters)
        {
            waiter.TrySetResult();
        }

        entry.Waiters.Clear();
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
                WakeWaiters(oldest.Value);
            }

            if (_entries.Count >= _options.MaxTrackedEntries)
            {
                var evicted = _byLastSeen.First!;
                _byLastSeen.RemoveFirst();
                _entries.Remove(evicted.Value.Key);
                WakeWaiters(evicted.Value);
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

        /// <summary>Attempts waiting for one in flight to end (at most MaxWaitingAttempts).</summary>
        public List<TaskCompletionSource> Waiters { get; } = [];
    }
}
