using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Hosting;

/// <summary>
/// Counts the node's STOMP connections, WebSocket and TCP together, and refuses one past
/// <c>max-connections</c> or <c>max-connections-per-address</c> (<see cref="StompBrokerOptions.MaxConnections"/>,
/// <see cref="StompBrokerOptions.MaxConnectionsPerAddress"/>). The one place that counts: the transports
/// take a <see cref="Lease"/> before a session starts and give it back when it ends; a refusal is counted
/// (<c>broker.connections.refused</c>, tagged with the limit) and logged here.
/// </summary>
internal sealed partial class ConnectionLimiter
{
    public const string MaxConnectionsLimit = "max-connections";
    public const string MaxConnectionsPerAddressLimit = "max-connections-per-address";

    /// <summary>File descriptors kept for the server's own files and outgoing connections when the default is derived.</summary>
    private const int DescriptorReserve = 500;

    /// <summary>The default where the open-file limit cannot be read.</summary>
    private const int FallbackMaxConnections = 10_000;

    private readonly Lock _gate = new();
    private readonly Dictionary<IPAddress, int> _perAddress = [];
    private readonly BrokerMetrics _metrics;
    private readonly ILogger _logger;
    private readonly long? _openFileLimit;
    private int _total;
    private long _lastRefusalLoggedAt = long.MinValue;
    private int _refusalsNotLogged;

    public ConnectionLimiter(IOptions<StompBrokerOptions> options, BrokerMetrics metrics, ILogger<ConnectionLimiter> logger)
    {
        var o = options.Value;
        _openFileLimit = o.MaxConnections is null ? OpenFileLimit() : null;
        MaxConnections = Math.Max(0, o.MaxConnections ?? DefaultMaxConnections(_openFileLimit));
        MaxConnectionsPerAddress = Math.Max(0, o.MaxConnectionsPerAddress);
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
        $", max-connections-per-address {(MaxConnectionsPerAddress == 0 ? "none" : MaxConnectionsPerAddress.ToString("N0", CultureInfo.InvariantCulture))}";

    /// <summary>A lease for one more connection from <paramref name="remote"/>, or null with the refusal (already counted and logged).</summary>
    public Lease? TryAcquire(EndPoint? remote, out string refusal)
    {
        var address = remote is IPEndPoint ip ? (ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address) : null;
        string? limit = null;
        long value = 0, max = 0;
        lock (_gate)
        {
            var fromAddress = 0;
            if (MaxConnections > 0 && _total >= MaxConnections)
            {
                (limit, value, max) = (MaxConnectionsLimit, _total + 1L, MaxConnections);
            }
            else if (MaxConnectionsPerAddress > 0 && address is not null &&
                     _perAddress.TryGetValue(address, out fromAddress) && fromAddress >= MaxConnectionsPerAddress)
            {
                (limit, value, max) = (MaxConnectionsPerAddressLimit, fromAddress + 1L, MaxConnectionsPerAddress);
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

                refusal = "";
                return new Lease(this, address);
            }
        }

        refusal = $"limit exceeded: {limit} ({value} > {max})";
        _metrics.ConnectionRefused(limit);
        LogRefusal(remote, refusal);
        return null;
    }

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
