namespace Broker.Server.Admin;

/// <summary>
/// Every <see cref="Interval"/>: the counters' totals go into a ring of <see cref="RingSize"/> samples (the
/// dashboard's message-rate chart over the last minutes). Runs only while the admin API is on.
/// </summary>
internal sealed class StatsSampler(BrokerCounters counters, TimeProvider time, ILogger<StatsSampler> logger) : IHostedService, IDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);

    /// <summary>Samples kept: five minutes at <see cref="Interval"/>.</summary>
    public const int RingSize = 150;

    private readonly Lock _gate = new();
    private readonly Sample[] _ring = new Sample[RingSize];
    private int _head;
    private int _count;
    private ITimer? _timer;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        Tick();
        _timer = time.CreateTimer(static s => ((StatsSampler)s!).Tick(), this, Interval, Interval);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        return Task.CompletedTask;
    }

    public void Dispose() => _timer?.Dispose();

    /// <summary>Per-second rates between consecutive samples, oldest first.</summary>
    public List<RateSample> Rates()
    {
        lock (_gate)
        {
            var rates = new List<RateSample>(Math.Max(_count - 1, 0));
            for (var i = 1; i < _count; i++)
            {
                var previous = _ring[(_head + i - 1) % RingSize];
                var current = _ring[(_head + i) % RingSize];
                var seconds = time.GetElapsedTime(previous.Timestamp, current.Timestamp).TotalSeconds;
                if (seconds <= 0)
                {
                    continue;
                }

                rates.Add(new RateSample(
                    current.At,
                    Rate(previous.Totals.Published, current.Totals.Published, seconds),
                    Rate(previous.Totals.Delivered, current.Totals.Delivered, seconds),
                    Rate(previous.Totals.Dropped, current.Totals.Dropped, seconds),
                    Rate(previous.Totals.BytesReceived, current.Totals.BytesReceived, seconds),
                    Rate(previous.Totals.BytesSent, current.Totals.BytesSent, seconds)));
            }

            return rates;
        }
    }

    private static double Rate(long before, long after, double seconds) => Math.Round(Math.Max(after - before, 0) / seconds, 2);

    // On a timer thread; an exception here would end nothing but this tick, so it is logged and the next tick tries again.
    private void Tick()
    {
        try
        {
            var sample = new Sample(time.GetUtcNow(), time.GetTimestamp(), counters.Read());
            lock (_gate)
            {
                if (_count < RingSize)
                {
                    _ring[(_head + _count++) % RingSize] = sample;
                }
                else
                {
                    _ring[_head] = sample;
                    _head = (_head + 1) % RingSize;
                }
            }
        }
        catch (Exception ex)
        {
            Log.SampleFailed(logger, ex);
        }
    }

    private readonly record struct Sample(DateTimeOffset At, long Timestamp, CounterTotals Totals);
}

/// <summary>Messages and bytes per second over one sampling interval ending at <paramref name="At"/>.</summary>
internal sealed record RateSample(DateTimeOffset At, double Published, double Delivered, double Dropped, double BytesReceived, double BytesSent);
