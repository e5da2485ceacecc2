using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Resources;

/// <summary>
/// Holds the process's own memory against <c>Broker:MemoryLimit</c> (with <see cref="MemoryCalculation.Process"/>, the
/// default): one timer samples the resident memory every <see cref="SampleInterval"/> and reports it to the
/// <see cref="MemoryBudget"/>, which flow-controls publishers while it is at the limit exactly as while what the broker
/// holds for clients is. Memory that is only garbage must not keep publishers waiting: when the process's memory alone
/// would block them (or keeps them blocked), a full collection is induced first, at most once per
/// <see cref="CollectInterval"/>, and the memory sampled again. It is not repeated while nothing changed since the last
/// one (the resident memory has not grown, nor the budget given anything back, by <c>MemoryLimit</c>/64 or more): it
/// would find no more, and a full compacting collection of live messages is a pause for nothing. Nothing here runs per
/// message.
/// </summary>
internal sealed class ProcessMemoryMonitor : IHostedService, IDisposable, IAsyncDisposable
{
    /// <summary>
    /// How often the process's memory is sampled: a read of a few bytes, so 4 times a second (RabbitMQ's monitor: about
    /// once a second) is cheap, and a burst between two samples is held by the budget's count on top of the last one.
    /// </summary>
    public static readonly TimeSpan SampleInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>The shortest time between two induced collections: a full compacting collection costs a pause.</summary>
    public static readonly TimeSpan CollectInterval = TimeSpan.FromSeconds(5);

    private readonly MemoryBudget _budget;
    private readonly IProcessMemoryProbe _probe;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly bool _enabled;
    private ITimer? _timer;
    private long _collectedAt;
    private bool _collected;
    private long _residentAfterCollect;
    private long _usedAtCollect;
    private int _sampling;
    private volatile bool _stopped;

    public ProcessMemoryMonitor(MemoryBudget budget, IProcessMemoryProbe probe, TimeProvider time, IOptions<StompBrokerOptions> options, BrokerMetrics metrics, ILogger<ProcessMemoryMonitor> logger)
    {
        _budget = budget;
        _probe = probe;
        _time = time;
        _logger = logger;
        _enabled = options.Value.MemoryCalculation == MemoryCalculation.Process;
        if (_enabled)
        {
            metrics.Observe("memory.process", "monitor", () => _budget.ProcessMemory);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!_enabled)
        {
            return Task.CompletedTask;
        }

        Sample();
        if (_budget.ProcessMemory >= _budget.LowWatermark)
        {
            Log.ProcessAboveLimitAtStart(_logger, _budget.ProcessMemory, _budget.Limit);
        }

        _timer = _time.CreateTimer(static s => ((ProcessMemoryMonitor)s!).Sample(), this, SampleInterval, SampleInterval);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => StopSamplingAsync().AsTask();

    public ValueTask DisposeAsync() => StopSamplingAsync();

    public void Dispose()
    {
        _stopped = true;
        _timer?.Dispose();
    }

    // Waits for a sample already running: the probe (disposed with the host) must not be read after this.
    private ValueTask StopSamplingAsync()
    {
        _stopped = true;
        return _timer?.DisposeAsync() ?? ValueTask.CompletedTask;
    }

    private void Sample()
    {
        // A sample that outlasts the interval (an induced collection on a loaded machine) is not overlapped.
        if (_stopped || Interlocked.Exchange(ref _sampling, 1) != 0)
        {
            return;
        }

        try
        {
            var resident = _probe.ResidentBytes();
            if (OnlyProcessMemoryBlocks(resident) && MayCollect(resident))
            {
                _probe.Collect();
                _collectedAt = _time.GetTimestamp();
                _collected = true;
                var after = _probe.ResidentBytes();
                Log.Collected(_logger, resident, after);
                resident = _residentAfterCollect = after;
                _usedAtCollect = _budget.Used;
            }

            _budget.ReportProcessMemory(resident);
        }
        catch (Exception ex)
        {
            // On a timer thread an exception would end the process; the budget keeps the last sample instead.
            Log.ProcessSampleFailed(_logger, ex);
        }
        finally
        {
            Volatile.Write(ref _sampling, 0);
        }
    }

    // Whether the process's memory is what blocks publishers, or would start to: a collection can only help then (a
    // budget above its limit holds live messages, which no collection frees).
    private bool OnlyProcessMemoryBlocks(long resident) => _budget.IsAboveHighWatermark
        ? resident >= _budget.LowWatermark && _budget.Used < _budget.LowWatermark
        : resident >= _budget.Limit;

    private bool MayCollect(long resident)
    {
        if (!_collected)
        {
            return true;
        }

        var step = _budget.Limit / 64;
        return _time.GetElapsedTime(_collectedAt) >= CollectInterval
            && (resident - _residentAfterCollect >= step || _usedAtCollect - _budget.Used >= step);
    }
}
