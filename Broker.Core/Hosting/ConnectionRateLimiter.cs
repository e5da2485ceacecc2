using System.Net;
using System.Net.Sockets;

namespace Broker.Hosting;

/// <summary>
/// How fast one address may open connections (<c>max-connection-rate-per-address</c>): a token bucket per
/// address (an IPv6 address counts by its /64, as in the login throttle) holding up to
/// <see cref="StompBrokerOptions.ConnectionBurstPerAddress"/> connections and refilled at
/// <see cref="StompBrokerOptions.MaxConnectionRatePerAddress"/> a second. The table holds at most
/// <see cref="MaxTracked"/> addresses; past it the least recently seen is forgotten (its bucket
/// starts full again when it comes back, so forgetting only ever lets someone in). Not thread-safe:
/// <see cref="ConnectionLimiter"/> calls it under its lock.
/// </summary>
internal sealed class ConnectionRateLimiter
{
    private readonly TimeProvider _time;
    private readonly Dictionary<IPAddress, LinkedListNode<Bucket>> _buckets = [];
    private readonly LinkedList<Bucket> _byLastSeen = new();

    public ConnectionRateLimiter(double perSecond, int burst, int maxTracked, TimeProvider time)
    {
        PerSecond = perSecond;
        Burst = Math.Max(1, burst);
        MaxTracked = Math.Max(1, maxTracked);
        _time = time;
    }

    /// <summary>Connections one address may open per second, sustained; 0 = no limit.</summary>
    public double PerSecond { get; }

    /// <summary>Connections one address may open at once, before the rate applies.</summary>
    public int Burst { get; }

    /// <summary>Addresses remembered at once.</summary>
    public int MaxTracked { get; }

    public bool Enabled => PerSecond > 0;

    /// <summary>Addresses remembered now (never more than <see cref="MaxTracked"/>).</summary>
    public int Count => _buckets.Count;

    /// <summary>The key an address counts under: IPv4 (and IPv4-mapped IPv6) as it is, IPv6 by its /64.</summary>
    public static IPAddress Key(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address;
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes);
    }

    /// <summary>Takes one connection from <paramref name="address"/>'s bucket; false, with when the next one would be let in, if it is empty.</summary>
    public bool TryTake(IPAddress address, out TimeSpan retryAfter)
    {
        var key = Key(address);
        var now = _time.GetTimestamp();
        if (_buckets.TryGetValue(key, out var node))
        {
            _byLastSeen.Remove(node);
            _byLastSeen.AddLast(node);
            var bucket = node.Value;
            bucket.Tokens = Math.Min(Burst, bucket.Tokens + _time.GetElapsedTime(bucket.At, now).TotalSeconds * PerSecond);
            bucket.At = now;
            if (bucket.Tokens < 1)
            {
                retryAfter = TimeSpan.FromSeconds((1 - bucket.Tokens) / PerSecond);
                return false;
            }

            bucket.Tokens--;
            retryAfter = TimeSpan.Zero;
            return true;
        }

        if (_buckets.Count >= MaxTracked && _byLastSeen.First is { } oldest)
        {
            _byLastSeen.RemoveFirst();
            _buckets.Remove(oldest.Value.Key);
        }

        _buckets[key] = _byLastSeen.AddLast(new Bucket(key) { Tokens = Burst - 1, At = now });
        retryAfter = TimeSpan.Zero;
        return true;
    }

    private sealed class Bucket(IPAddress key)
    {
        public IPAddress Key { get; } = key;

        public double Tokens { get; set; }

        public long At { get; set; }
    }
}
