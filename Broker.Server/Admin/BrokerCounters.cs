using System.Diagnostics.Metrics;

namespace Broker.Server.Admin;

/// <summary>
/// The broker's own instruments (meter <c>Broker</c> of this host), totalled with a <see cref="MeterListener"/>:
/// the dashboard shows the numbers <c>/metrics</c> exports. A counter's measurement costs one interlocked add;
/// gauges are read only when asked for.
/// </summary>
internal sealed class BrokerCounters : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Tally _published = new();
    private readonly Tally _delivered = new();
    private readonly Tally _dropped = new();
    private readonly Tally _errors = new();
    private readonly Tally _received = new();
    private readonly Tally _sent = new();
    private readonly Tally _limits = new();
    private readonly Tally _resumedRecovered = new();
    private readonly Tally _resumedNotRecovered = new();
    private readonly Gauge _queued = new();
    private readonly Gauge _backlog = new();
    private readonly Gauge _links = new();
    private readonly Lock _gaugeGate = new();
    private readonly List<LinkState> _linkStates = [];

    public BrokerCounters(IMeterFactory meterFactory)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            // This host's meter only: another host in the same process has its own factory.
            if (instrument.Meter.Name != BrokerMetrics.MeterName || !ReferenceEquals(instrument.Meter.Scope, meterFactory))
            {
                return;
            }

            object? state = instrument.Name switch
            {
                "broker.messages.published" => _published,
                "broker.messages.delivered" => _delivered,
                "broker.messages.dropped" => _dropped,
                "broker.errors" => _errors,
                "broker.io.received" => _received,
                "broker.io.sent" => _sent,
                "broker.limits.exceeded" => _limits,
                "broker.sessions.resumed" => _resumedRecovered,
                "broker.queue.messages" => _queued,
                "broker.store.backlog" => _backlog,
                "broker.link.up" => _links,
                _ => null,
            };
            if (state is not null)
            {
                listener.EnableMeasurementEvents(instrument, state);
            }
        };
        _listener.SetMeasurementEventCallback<long>(OnMeasurement);
        _listener.Start();
    }

    /// <summary>The counters' totals since the process started.</summary>
    public CounterTotals Read() => new(
        _published.Value, _delivered.Value, _dropped.Value, _errors.Value, _received.Value, _sent.Value, _limits.Value,
        _resumedRecovered.Value, _resumedNotRecovered.Value);

    /// <summary>The gauges now: messages waiting in queues, session writes waiting for the store, each backing link.</summary>
    public GaugeValues ReadGauges()
    {
        lock (_gaugeGate)
        {
            _queued.Value = 0;
            _backlog.Value = 0;
            _linkStates.Clear();
            _listener.RecordObservableInstruments();
            return new GaugeValues(_queued.Value, _backlog.Value, [.. _linkStates]);
        }
    }

    public void Dispose() => _listener.Dispose();

    private void OnMeasurement(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        switch (state)
        {
            case Tally tally when tally == _resumedRecovered && !HasTag(tags, "recovered", "true"):
                _resumedNotRecovered.Add(value);
                break;
            case Tally tally:
                tally.Add(value);
                break;
            case Gauge gauge when gauge == _links:
                // Called inside RecordObservableInstruments, under _gaugeGate.
                _linkStates.Add(new LinkState(TagText(tags, "link") ?? "link", TagText(tags, "index"), value != 0));
                break;
            case Gauge gauge:
                gauge.Value += value;
                break;
        }
    }

    private static bool HasTag(ReadOnlySpan<KeyValuePair<string, object?>> tags, string name, string value) => TagText(tags, name) == value;

    private static string? TagText(ReadOnlySpan<KeyValuePair<string, object?>> tags, string name)
    {
        foreach (var tag in tags)
        {
            if (tag.Key == name)
            {
                return tag.Value?.ToString();
            }
        }

        return null;
    }

    private sealed class Tally
    {
        private long _value;

        public long Value => Volatile.Read(ref _value);

        public void Add(long value) => Interlocked.Add(ref _value, value);
    }

    // Written only inside RecordObservableInstruments, under _gaugeGate.
    private sealed class Gauge
    {
        public long Value { get; set; }
    }
}

/// <summary>Counter totals since start.</summary>
internal readonly record struct CounterTotals(
    long Published, long Delivered, long Dropped, long Errors, long BytesReceived, long BytesSent, long LimitsExceeded,
    long ResumedRecovered, long ResumedNotRecovered);

/// <summary>Gauge readings.</summary>
internal sealed record GaugeValues(long QueuedMessages, long StoreBacklog, IReadOnlyList<LinkState> Links);

/// <summary>One link to a backing service (a relay connection to RabbitMQ, the cluster's Redis).</summary>
internal sealed record LinkState(string Link, string? Index, bool Up);
