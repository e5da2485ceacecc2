using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Broker.Security;

/// <summary>What <see cref="LoginThrottle.Begin"/> says about an attempt.</summary>
/// <param name="Refused">Refuse it without checking the passcode.</param>
/// <param name="Delay">Wait this long before checking it.</param>
/// <param name="RetryAfter">When refused: how long the refusal lasts.</param>
/// <param name="LockedOut">Keys this attempt's failure count locked (logged once, when it happens).</param>
internal readonly record struct ThrottleVerdict(bool Refused, TimeSpan Delay, TimeSpan RetryAfter, IReadOnlyList<(string Key, int Failures)>? LockedOut);

/// <summary>
/// The failed-login table: one entry per client address and per login, bounded by
/// <see cref="LoginThrottlingOptions.MaxTrackedEntries"/> (least recently seen forgotten first).
/// An attempt counts as a failure as soon as it begins and is taken back if it succeeds, so a thousand
/// CONNECTs sent at once are throttled as if one came after the other. Locked only for table updates
/// (never across an await); time comes from the injected <see cref="TimeProvider"/>.
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
            options.BaseDelay < TimeSpan.Zero || options.MaxDelay < options.BaseDelay)
        {
            throw new InvalidOperationException(
                "Broker:LoginThrottling: MaxTrackedEntries must be at least 2, FreeAttempts 0 or more, MaxFailuresPerLogin and MaxFailuresPerAddress at least 1, and 0 <= BaseDelay <= MaxDelay");
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

    /// <summary>Starts an attempt: refused, or counted as a failure (until <see cref="Succeeded"/>) with the delay to wait first.</summary>
    public ThrottleVerdict Begin(string? addressKey, string loginKey)
    {
        var now = _time.GetTimestamp();
        lock (_gate)
        {
            // A refused attempt tests no passcode: it counts nothing and adds no login entry.
            var retryAfter = TimeSpan.Zero;
            var address = addressKey is null ? null : Touch(addressKey, now, isAddress: true);
            if (address is not null && address.LockedUntil > now)
            {
                retryAfter = _time.GetElapsedTime(now, address.LockedUntil);
            }

            var login = retryAfter > TimeSpan.Zero ? null : Touch(loginKey, now, isAddress: false);
            if (login is not null && login.LockedUntil > now)
            {
                retryAfter = _time.GetElapsedTime(now, login.LockedUntil);
            }

            if (retryAfter > TimeSpan.Zero)
            {
                return new ThrottleVerdict(true, TimeSpan.Zero, retryAfter, null);
            }

            List<(string, int)>? locked = null;
            var delay = TimeSpan.Zero;
            foreach (var entry in (ReadOnlySpan<Entry?>)[address, login])
            {
                if (entry is null)
                {
                    continue;
                }

                var earlier = entry.Failures;
                entry.Failures++;
                entry.LastFailure = now;
                if (entry.Failures >= (entry.IsAddress ? _options.MaxFailuresPerAddress : _options.MaxFailuresPerLogin))
                {
                    entry.LockedUntil = now + ToTimestamp(_options.LockoutDuration);
                    (locked ??= []).Add((entry.Key, entry.Failures));
                }

                var wait = DelayAfter(earlier);
                delay = wait > delay ? wait : delay;
            }

            return new ThrottleVerdict(false, delay, TimeSpan.Zero, locked);
        }
    }

    /// <summary>The attempt begun with these keys succeeded: the login starts from zero, the address takes its failure back.</summary>
    public void Succeeded(string? addressKey, string loginKey)
    {
        lock (_gate)
        {
            if (_entries.Remove(loginKey, out var login))
            {
                _byLastSeen.Remove(login);
            }

            if (addressKey is not null && _entries.TryGetValue(addressKey, out var node))
            {
                var address = node.Value;
                address.Failures = Math.Max(0, address.Failures - 1);
                if (address.Failures < _options.MaxFailuresPerAddress)
                {
                    address.LockedUntil = 0;
                }
            }
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
            }

            if (_entries.Count >= _options.MaxTrackedEntries)
            {
                var evicted = _byLastSeen.First!;
                _byLastSeen.RemoveFirst();
                _entries.Remove(evicted.Value.Key);
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
    }
}
