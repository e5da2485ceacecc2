using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Broker.Tests.Security;

/// <summary>Every log entry a server writes, at every level: the message and each structured value.</summary>
internal sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _entries = new();

    public IReadOnlyCollection<string> Entries => _entries;

    /// <summary>Adds this provider to a server's services, at Trace level for this provider only.</summary>
    public void AddTo(IServiceCollection services) =>
        services.AddLogging(b => b.AddProvider(this).AddFilter<CapturedLogs>(null, LogLevel.Trace));

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturedLogs owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join(" | ", pairs.Select(p => $"{p.Key}={p.Value}")) : "";
            owner._entries.Enqueue($"{logLevel} {category}: {formatter(state, exception)} [{values}] {exception}");
        }
    }
}

/// <summary>Sums the broker's counters of one server (its own meter factory), by tag value.</summary>
internal sealed class CounterReader : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _totals = new();

    public CounterReader(IServiceProvider services)
    {
        var factory = services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Scope == factory && instrument.Meter.Name == BrokerMetrics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            _totals.AddOrUpdate(instrument.Name, value, (_, sum) => sum + value);
            foreach (var tag in tags)
            {
                _totals.AddOrUpdate($"{instrument.Name}{{{tag.Key}={tag.Value}}}", value, (_, sum) => sum + value);
            }
        });
        _listener.Start();
    }

    /// <summary>The total of <paramref name="name"/>, e.g. <c>broker.auth.failures</c> or <c>broker.auth.throttled{action=refused}</c>.</summary>
    public long this[string name] => _totals.TryGetValue(name, out var total) ? total : 0;

    public void Dispose() => _listener.Dispose();
}
