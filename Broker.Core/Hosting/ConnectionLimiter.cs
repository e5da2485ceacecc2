using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Hosting;

/// <summary>Why <see cref="ConnectionLimiter.TryAcquire"/> refused a connection.</summary>
/// <param name="Limit">The limit's name (<c>max-connections</c>, <c>max-connections-per-address</c>, <c>max-connection-rate-per-address</c>).</param>
/// <param name="Message">What the client is told: <c>limit exceeded: NAME (...)</c>.</param>
/// <param name="RetryAfter">For the rate limit: when the address may open its next connection; otherwise zero.</param>
internal readonly record struct ConnectionRefusal(string Limit, string Message, TimeSpan RetryAfter);

/// <summary>
/// Counts the node's STOMP connections, WebSocket and TCP together, and refuses one past
/// <c>max-connections</c> or <c>max-connections-per-address</c> (<see cref="StompBrokerOptions.MaxConnections"/>,
/// <see cref="StompBrokerOptions.MaxConnectionsPerAddress"/>), or one that an address opens faster than
/// <c>max-connection-rate-per-address</c> allows (<see cref="ConnectionRateLimiter"/>). The one place that counts:
/// the transports take a <see cref="Lease"/> before a session starts and give it back when it ends; a refusal is
/// counted (<c>broker.connections.refused</c> and <c>broker.limits.exceeded</c>, tagged with the limit) and logged here.
/// </summary>
internal sealed partial class ConnectionLimiter
{
    public const string MaxConnectionsLimit = "max-connections";
    public const string MaxConnectionsPerAddressLimit = "max-connections-per-address";
    public const string MaxConnectionRatePerAddressLimit = "max-connection-rate-per-address";

    /// <summary>File descriptors kept for the server's own files and outgoing connections when the default is derived.</summary>
    private const int DescriptorReserve = 500;

    /// <summary>The default where the open-file limit cannot be read.</summary>
    private const int FallbackMaxConnections = 10_000;

    private readonly Lock _gate = new();
    private readonly Dictionary<IPAddress, int> _perAddress = [];
    private readonly BrokerMetrics _metrics;
    private readonly ILogger _logger;
    private readonly long? _openFileLimit;
    private readonly ConnectionRateLimiter _rate;
    private int _total;
    private long _lastRefusalLoggedAt = long.MinValue;
    private int _refusalsNotLogged;

    public ConnectionLimiter(IOptions<StompBrokerOptions> options, BrokerMetrics metrics, ILogger<ConnectionLimiter> logger, TimeProvider time)
    {
        var o = options.Value;
        _openFileLimit = o.MaxConnections is null ? OpenFileLimit() : null;
        MaxConnections = Math.Max(0, o.MaxConnections ?? DefaultMaxConnections(_openFileLimit));
        MaxConnectionsPerAddress = Math.Max(0, o.MaxConnectionsPerAddress);
        _rate = new ConnectionRateLimiter(Math.Max(0, o.MaxConnectionRatePerAddress), o.ConnectionBurstPerAddress, o.MaxTrackedConnectionAddresses, time);
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>The node-wide limit in force; 0 = none.</summary>
    public int MaxConnections { get; }

    /// <summary>The per-address limit in force; 0 = none.</summary>
    public int MaxConnectionsPerAddress { get; }

    /// <summary>Connections holding a lease now.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _total;
            }
        }
    }

    public string Describe() =>
        $"Connection limits: max-connections {(MaxConnections == 0 ? "none" : MaxConnections.ToString("N0", CultureInfo.InvariantCulture))}" +
        (MaxConnections > 0 && _openFileLimit is { } files ? $" (from the open-file limit, {files:N0})" : "") +
        $", max-connections-per-address {(MaxConnectionsPerAddress == 0 ? "none" : MaxConnectionsPerAddress.ToString("N0", CultureInfo.InvariantCulture))}" +
        $", max-connection-rate-per-address {(_rate.Enabled ? DescribeRate() : "none")}";

    private string DescribeRate() => string.Create(CultureInfo.InvariantCulture, $"{_rate.PerSecond:0.###}/s after a burst of {_rate.Burst:N0}");

    /// <summary>A lease for one more connection from <paramref name="remote"/>, or null with the refusal (already counted and logged).</summary>
    public Lease? TryAcquire(EndPoint? remote, out ConnectionRefusal refusal)
    {
        var address = remote is IPEndPoint ip ? (ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address) : null;
        string? limit = null;
        string detail;
        var retryAfter = TimeSpan.Zero;
        lock (_gate)
        {
            var fromAddress = 0;
            if (MaxConnections > 0 && _total >= MaxConnections)
            {
                (limit, detail) = (MaxConnectionsLimit, Exceeded(_total + 1L, MaxConnections));
            }
            else if (MaxConnectionsPerAddress > 0 && address is not null &&
                     _perAddress.TryGetValue(address, out fromAddress) && fromAddress >= MaxConnectionsPerAddress)
            {
                (limit, detail) = (MaxConnectionsPerAddressLimit, Exceeded(fromAddress + 1L, MaxConnectionsPerAddress));
            }
            else if (_rate.Enabled && address is not null && !_rate.TryTake(address, out retryAfter))
            {
                (limit, detail) = (MaxConnectionRatePerAddressLimit,
                    string.Create(CultureInfo.InvariantCulture, $"more than {_rate.Burst:N0} at once or {_rate.PerSecond:0.###}/s from one address; retry in {retryAfter.TotalSeconds:0.###} s"));
            }
            else
            {
                _total++;
                if (MaxConnectionsPerAddress > 0 && address is not null)
                {
                    _perAddress[address] = fromAddress + 1;
                }
                else
                {
                    address = null;
                }

                refusal = default;
                return new Lease(this, address);
            }
        }

        refusal = new ConnectionRefusal(limit, $"limit exceeded: {limit} ({detail})", retryAfter);
        _metrics.ConnectionRefused(limit);
        _metrics.LimitExceeded(limit);
        LogRefusal(remote, refusal.Message);
        return null;
    }

    private static string Exceeded(long value, long max) => string.Create(CultureInfo.InvariantCulture, $"{value} > {max}");

    private void Release(IPAddress? address)
    {
        lock (_gate)
        {
            _total--;
            if (address is not null && _perAddress.TryGetValue(address, out var count))
            {
                if (count <= 1)
                {
                    _perAddress.Remove(address);
                }
                else
                {
                    _perAddress[address] = count - 1;
                }
            }
        }
    }

    // A flood of refusals makes at most one line a second; the line says how many went unlogged.
    private void LogRefusal(EndPoint? remote, string refusal)
    {
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastRefusalLoggedAt);
        if ((last != long.MinValue && now - last < 1000) || Interlocked.CompareExchange(ref _lastRefusalLoggedAt, now, last) != last)
        {
            Interlocked.Increment(ref _refusalsNotLogged);
            return;
        }

        ConnectionRefused(_logger, remote?.ToString(), refusal, Interlocked.Exchange(ref _refusalsNotLogged, 0));
    }

    [LoggerMessage(101, LogLevel.Warning, "STOMP connection from {Remote} refused: {Refusal} ({Unlogged} more refused since the last such line)")]
    private static partial void ConnectionRefused(ILogger logger, string? remote, string refusal, int unlogged);

    // One descriptor per connection; the server keeps some for itself (listeners, stores, logs, outgoing connections).
    internal static int DefaultMaxConnections(long? openFileLimit) => openFileLimit switch
    {
        null => FallbackMaxConnections,
        > int.MaxValue => 0,
        { } files => (int)Math.Max(files - DescriptorReserve, files / 2),
    };

    /// <summary>The process's soft open-file limit (Linux /proc/self/limits); <see cref="long.MaxValue"/> when unlimited, null when unknown.</summary>
    internal static long? OpenFileLimit()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/limits"))
            {
                if (line.StartsWith("Max open files", StringComparison.Ordinal))
                {
                    var fields = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (fields.Length > 0 && fields[0] == "unlimited")
                    {
                        return long.MaxValue;
                    }

                    return fields.Length > 0 && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var soft) ? soft : null;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }

    /// <summary>One connection's place; disposing it (once, when the session has ended) gives the place back.</summary>
    internal sealed class Lease(ConnectionLimiter limiter, IPAddress? address) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                limiter.Release(address);
            }
        }
    }
}
