using System.Diagnostics.Metrics;

namespace Broker;

/// <summary>The broker's instruments, on the meter named "Broker" (readable by dotnet-counters and OpenTelemetry).</summary>
public sealed class BrokerMetrics
{
    public const string MeterName = "Broker";

    private readonly UpDownCounter<long> _connections;
    private readonly Counter<long> _closed;
    private readonly Counter<long> _published;
    private readonly Counter<long> _delivered;
    private readonly Counter<long> _dropped;
    private readonly Counter<long> _errors;
    private readonly Counter<long> _resumed;

    public BrokerMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _connections = meter.CreateUpDownCounter<long>("broker.connections.active", description: "Open STOMP connections");
        _closed = meter.CreateCounter<long>("broker.connections.closed", description: "STOMP connections closed, by reason (tag 'reason')");
        _published = meter.CreateCounter<long>("broker.messages.published", description: "Messages accepted from SEND frames");
        _delivered = meter.CreateCounter<long>("broker.messages.delivered", description: "MESSAGE frames handed to subscribers");
        _dropped = meter.CreateCounter<long>("broker.messages.dropped", description: "Messages dropped by an overflow policy");
        _errors = meter.CreateCounter<long>("broker.errors", description: "ERROR frames sent");
        _resumed = meter.CreateCounter<long>("broker.sessions.resumed", description: "Durable sessions resumed with a session token");
    }

    public void ConnectionOpened() => _connections.Add(1);

    internal void ConnectionClosed(Sessions.CloseReason reason)
    {
        _connections.Add(-1);
        _closed.Add(1, new KeyValuePair<string, object?>("reason", ReasonTag(reason)));
    }

    public void Published() => _published.Add(1);

    public void Delivered() => _delivered.Add(1);

    public void Dropped() => _dropped.Add(1);

    public void Error() => _errors.Add(1);

    public void Resumed() => _resumed.Add(1);

    // The reason tag's values: fixed strings, so tagging allocates nothing.
    private static string ReasonTag(Sessions.CloseReason reason) => reason switch
    {
        Sessions.CloseReason.Disconnect => "disconnect",
        Sessions.CloseReason.Error => "error",
        Sessions.CloseReason.Timeout => "timeout",
        Sessions.CloseReason.SlowConsumer => "slow_consumer",
        Sessions.CloseReason.TakenOver => "taken_over",
        Sessions.CloseReason.PeerGone => "peer_gone",
        Sessions.CloseReason.ServerShutdown => "server_shutdown",
        _ => "application",
    };
}
