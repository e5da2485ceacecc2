using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Tests;

/// <summary>
/// Reads one server's instruments (its own meter factory): counters summed, gauges as last observed. A value is
/// found by the instrument's name with all its tag values (<see cref="Value"/>), or summed over the other tags
/// (<c>meter["broker.auth.failures"]</c>, <c>meter["broker.auth.throttled{action=refused}"]</c>).
/// </summary>
internal sealed class BrokerMeter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _values = new();
    private readonly ConcurrentDictionary<string, long> _totals = new();

    public BrokerMeter(IServiceProvider server)
    {
        var factory = server.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Scope == factory && instrument.Meter.Name == BrokerMetrics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var key = instrument.Name;
            foreach (var tag in tags)
            {
                key += "|" + tag.Value;
            }

            if (instrument.GetType().Name.StartsWith("Observable", StringComparison.Ordinal))
            {
                _values[key] = value;
                return;
            }

            _values.AddOrUpdate(key, value, (_, sum) => sum + value);
            _totals.AddOrUpdate(instrument.Name, value, (_, sum) => sum + value);
            foreach (var tag in tags)
            {
                _totals.AddOrUpdate($"{instrument.Name}{{{tag.Key}={tag.Value}}}", value, (_, sum) => sum + value);
            }
        });
        _listener.Start();
    }

    /// <summary>A counter's sum (or a gauge's last value) for <paramref name="name"/> with the tag values <paramref name="tags"/>.</summary>
    public long Value(string name, params string[] tags) => _values.GetValueOrDefault(string.Join("|", [name, .. tags]));

    /// <summary>A counter's total, over every tag (<c>name</c>) or for one tag's value (<c>name{key=value}</c>).</summary>
    public long this[string name] => _totals.GetValueOrDefault(name);

    /// <summary>Observes every gauge now.</summary>
    public BrokerMeter Observe()
    {
        _listener.RecordObservableInstruments();
        return this;
    }

    public void Dispose() => _listener.Dispose();
}
