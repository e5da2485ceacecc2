using System.Diagnostics.Metrics;

namespace Broker;

/// <summary>
/// The broker's instruments, on the meter named "Broker" (readable by dotnet-counters, OpenTelemetry and so
/// Prometheus). Units follow OpenTelemetry's conventions (<c>{connection}</c>, <c>{message}</c>, <c>By</c>,
/// <c>s</c>); tag values come from small fixed sets (transport, destination kind, limit name, outcome), never
/// from what a client names, so no client can grow the number of series.
/// </summary>
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
    private readonly Counter<long> _bytesReceived;
    private readonly Counter<long> _bytesSent;
    private readonly Counter<long> _bytesBeforeConnect;
    private readonly Counter<long> _limits;
    private readonly Histogram<double> _storeWrite;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Func<IEnumerable<Measurement<long>>>> _observed = new(StringComparer.Ordinal);
    private readonly Counter<long> _refused;

    public BrokerMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _connections = meter.CreateUpDownCounter<long>("broker.connections.active", "{connection}", "Open STOMP connections, by transport");
        _closed = meter.CreateCounter<long>("broker.connections.closed", "{connection}", "STOMP connections closed, by reason and transport");
        _published = meter.CreateCounter<long>("broker.messages.published", "{message}", "Messages accepted from SEND frames, by destination kind");
        _delivered = meter.CreateCounter<long>("broker.messages.delivered", "{message}", "MESSAGE frames written to subscribers, by destination kind");
        _dropped = meter.CreateCounter<long>("broker.messages.dropped", "{message}", "Messages dropped by an overflow policy, by destination kind");
        _errors = meter.CreateCounter<long>("broker.errors", "{frame}", "ERROR frames sent");
        _resumed = meter.CreateCounter<long>("broker.sessions.resumed", "{session}", "Durable sessions resumed with a session token, by recovered (true or false)");
        _bytesReceived = meter.CreateCounter<long>("broker.io.received", "By", "Bytes read from clients");
        _bytesSent = meter.CreateCounter<long>("broker.io.sent", "By", "Bytes written to clients");
        _bytesBeforeConnect = meter.CreateCounter<long>("broker.io.read_before_connect", "By", "Bytes WebSocket connections read from clients before their CONNECT was accepted (at most about max-frame-size-before-connect each)");
        _limits = meter.CreateCounter<long>("broker.limits.exceeded", "{event}", "Times a client hit a limit (slow consumer included), by limit name");
        _storeWrite = meter.CreateHistogram<double>("broker.store.write.duration", "s", "Time to apply one write to the session store",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        meter.CreateObservableGauge("broker.sessions.connected", () => Observe("sessions.connected"), "{session}", "Sessions with a live connection on this node");
        meter.CreateObservableGauge("broker.sessions.away", () => Observe("sessions.away"), "{session}", "Durable sessions of this node whose client is away and may resume (until the session TTL)");
        meter.CreateObservableGauge("broker.destinations.active", () => Observe("destinations.active"), "{destination}", "Live destinations this node holds, by kind");
        meter.CreateObservableGauge("broker.queue.messages", () => Observe("queue.messages"), "{message}", "Messages waiting in queues for a consumer, all queues together");
        meter.CreateObservableGauge("broker.store.backlog", () => Observe("store.backlog"), "{write}", "Session writes queued for the store");
        meter.CreateObservableGauge("broker.link.up", () => Observe("link.up"), "{link}", "Links to backing services that are up (1) or down (0), by link (relay, cluster)");
        meter.CreateObservableGauge("broker.memory.used", () => Observe("memory.used"), "By", "Bytes the broker holds on behalf of clients, by component (queues, topic_history, outboxes, transactions, partial_frames)");
        meter.CreateObservableGauge("broker.memory.process", () => Observe("memory.process"), "By", "The process's resident memory at its last sample, held against Broker:MemoryLimit as broker.memory.used is (not reported with Broker:MemoryCalculation=Budget)");
        meter.CreateObservableGauge("broker.memory.limit", () => Observe("memory.limit"), "By", "The memory budget's high watermark (Broker:MemoryLimit)");
        meter.CreateObservableGauge("broker.flow.blocked", () => Observe("flow.blocked"), "{connection}", "Publishers flow-controlled now: not read from until memory falls below the low watermark");
        _refused = meter.CreateCounter<long>("broker.connections.refused", "{connection}", "Connections refused before a session started, by reason (a limit's name, or origin)");
    }

    /// <summary>Tag values for <c>transport</c>.</summary>
    public static class Transports
    {
        public const string WebSocket = "websocket";
        public const string Tcp = "tcp";
    }

    public void ConnectionOpened(string transport) => _connections.Add(1, new KeyValuePair<string, object?>("transport", transport));

    internal void ConnectionClosed(string transport, Sessions.CloseReason reason)
    {
        _connections.Add(-1, new KeyValuePair<string, object?>("transport", transport));
        _closed.Add(1, new KeyValuePair<string, object?>("reason", ReasonTag(reason)), new KeyValuePair<string, object?>("transport", transport));
    }

    public void Published(string kind = "topic") => _published.Add(1, new KeyValuePair<string, object?>("destination.kind", kind));

    public void Delivered(string kind) => _delivered.Add(1, new KeyValuePair<string, object?>("destination.kind", kind));

    public void Dropped(string kind = "queue") => _dropped.Add(1, new KeyValuePair<string, object?>("destination.kind", kind));

    public void Error() => _errors.Add(1);

    public void Resumed(bool recovered) => _resumed.Add(1, new KeyValuePair<string, object?>("recovered", recovered ? "true" : "false"));

    public void BytesReceived(long count) => _bytesReceived.Add(count);

    public void BytesSent(long count) => _bytesSent.Add(count);

    public void BytesReadBeforeConnect(long count) => _bytesBeforeConnect.Add(count);

    /// <summary>A client hit the limit named <paramref name="limit"/> (the name its ERROR carries).</summary>
    public void LimitExceeded(string limit) => _limits.Add(1, new KeyValuePair<string, object?>("limit", limit));

    public void StoreWrite(TimeSpan duration) => _storeWrite.Record(duration.TotalSeconds);

    /// <summary>
    /// Supplies the measurements of the observable instrument <paramref name="name"/> (<c>sessions.connected</c>,
    /// <c>destinations.active</c>, <c>queue.messages</c>, <c>store.backlog</c>, <c>link.up</c>, <c>memory.used</c>,
    /// <c>memory.process</c>, <c>memory.limit</c>, <c>flow.blocked</c>);
    /// several sources may feed one instrument (each with its own <paramref name="source"/> key).
    /// </summary>
    public void Observe(string name, string source, Func<IEnumerable<Measurement<long>>> measure)
    {
        lock (_gate)
        {
            _observed[name + "/" + source] = measure;
        }
    }

    /// <summary>Shorthand for one untagged value.</summary>
    public void Observe(string name, string source, Func<long> value) => Observe(name, source, () => [new Measurement<long>(value())]);

    private List<Measurement<long>> Observe(string name)
    {
        var prefix = name + "/";
        var result = new List<Measurement<long>>();
        lock (_gate)
        {
            foreach (var (key, measure) in _observed)
            {
                if (key.StartsWith(prefix, StringComparison.Ordinal))
                {
                    result.AddRange(measure());
                }
            }
        }

        return result;
    }

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
        Sessions.CloseReason.Terminated => "terminated",
        _ => "application",
    };

    /// <summary>A connection refused before its session started; <paramref name="reason"/> is a limit's name or <c>origin</c>.</summary>
    public void ConnectionRefused(string reason) => _refused.Add(1, new KeyValuePair<string, object?>("reason", reason));
}
