using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Tests.Hosting;

/// <summary>Reads one server's <c>broker.connections.refused</c> counter, by its <c>reason</c> tag.</summary>
internal sealed class RefusalMeter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _counts = new();

    public RefusalMeter(IServiceProvider server)
    {
        var factory = server.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Scope == factory && instrument.Meter.Name == BrokerMetrics.MeterName && instrument.Name == "broker.connections.refused")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "reason")
                {
                    _counts.AddOrUpdate((string)tag.Value!, value, (_, sum) => sum + value);
                }
            }
        });
        _listener.Start();
    }

    public long Count(string reason) => _counts.GetValueOrDefault(reason);

    public void Dispose() => _listener.Dispose();
}
