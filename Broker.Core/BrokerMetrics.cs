using System.Diagnostics.Metrics;

namespace Broker;

/// <summary>The broker's instruments, on the meter named "Broker" (readable by dotnet-counters and OpenTelemetry).</summary>
public sealed class BrokerMetrics
{
    public const string MeterName = "Broker";

    private readonly UpDownCounter<long> _connections;
    private readonly Counter<long> _published;
    private readonly Counter<long> _delivered;
    private readonly Counter<long> _dropped;
    private readonly Counter<long> _errors;
    private readonly Counter<long> _resumed;
    private readonly Counter<long> _refused;

    public BrokerMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _connections = meter.CreateUpDownCounter<long>("broker.connections.active", description: "Open STOMP connections");
        _published = meter.CreateCounter<long>("broker.messages.published", description: "Messages accepted from SEND frames");
        _delivered = meter.CreateCounter<long>("broker.messages.delivered", description: "MESSAGE frames handed to subscribers");
        _dropped = meter.CreateCounter<long>("broker.messages.dropped", description: "Messages dropped by an overflow policy");
        _errors = meter.CreateCounter<long>("broker.errors", description: "ERROR frames sent");
        _resumed = meter.CreateCounter<long>("broker.sessions.resumed", description: "Durable sessions resumed with a session token");
        _refused = meter.CreateCounter<long>("broker.connections.refused", description: "Connections refused before a session started, tagged with the reason (a limit's name, or origin)");
    }

    public void ConnectionOpened() => _connections.Add(1);

    public void ConnectionClosed() => _connections.Add(-1);

    public void Published() => _published.Add(1);

    public void Delivered() => _delivered.Add(1);

    public void Dropped() => _dropped.Add(1);

    public void Error() => _errors.Add(1);

    public void Resumed() => _resumed.Add(1);

    /// <summary>A connection refused before its session started; <paramref name="reason"/> is a limit's name or <c>origin</c>.</summary>
    public void ConnectionRefused(string reason) => _refused.Add(1, new KeyValuePair<string, object?>("reason", reason));
}
