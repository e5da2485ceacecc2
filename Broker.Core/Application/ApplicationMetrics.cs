using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Broker.Application;

/// <summary>
/// The application API's instruments, on the broker's meter ("Broker"): handled frames by kind and outcome, handler
/// time, replies dropped, away sessions tracked for expiry. Tag values come from fixed sets.
/// </summary>
internal sealed class ApplicationMetrics
{
    private readonly Counter<long> _handled;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _repliesDropped;
    private readonly Counter<long> _terminated;

    public ApplicationMetrics(IMeterFactory meterFactory, AwaySessions away)
    {
        var meter = meterFactory.Create(BrokerMetrics.MeterName);
        _handled = meter.CreateCounter<long>("broker.app.handled", "{frame}", "SEND and SUBSCRIBE frames handled by application handlers, by kind (message, subscription) and outcome (ok, failed, aborted)");
        _duration = meter.CreateHistogram<double>("broker.app.handler.duration", "s", "Time an application handler took, by kind",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _repliesDropped = meter.CreateCounter<long>("broker.app.replies.dropped", "{message}", "Replies and error reports dropped because the session does not subscribe to their destination");
        _terminated = meter.CreateCounter<long>("broker.sessions.terminated", "{session}", "Sessions ended by the application or an operator, by cause (terminate, max_per_user)");
        meter.CreateObservableGauge("broker.sessions.away", () => away.Count, "{session}", "Durable sessions that dropped on this node and may still resume (watched for expiry)");
    }

    public void Handled(StompHandlerKind kind, string outcome, long startedAt)
    {
        var kindTag = new KeyValuePair<string, object?>("kind", kind == StompHandlerKind.Message ? "message" : "subscription");
        _handled.Add(1, kindTag, new KeyValuePair<string, object?>("outcome", outcome));
        _duration.Record(Stopwatch.GetElapsedTime(startedAt).TotalSeconds, kindTag);
    }

    public void ReplyDropped() => _repliesDropped.Add(1);

    public void Terminated(string cause) => _terminated.Add(1, new KeyValuePair<string, object?>("cause", cause));
}
