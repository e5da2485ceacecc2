using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Tests.Resources;

/// <summary>Reads one server's instruments: counters summed by one tag's value, gauges as last observed.</summary>
internal sealed class BrokerMeter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _values = new();

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
            }
            else
            {
                _values.AddOrUpdate(key, value, (_, sum) => sum + value);
            }
        });
        _listener.Start();
    }

    /// <summary>A counter's sum (or a gauge's last value) for <paramref name="name"/> with the tag values <paramref name="tags"/>.</summary>
    public long Value(string name, params string[] tags) => _values.GetValueOrDefault(string.Join("|", [name, .. tags]));

    /// <summary>Observes every gauge now.</summary>
    public BrokerMeter Observe()
    {
        _listener.RecordObservableInstruments();
        return this;
    }

    public void Dispose() => _listener.Dispose();
}
