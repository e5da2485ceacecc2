using System.Diagnostics.Metrics;

namespace Broker.Cluster;

/// <summary>The cluster's own instruments, on the broker's meter ("Broker").</summary>
internal sealed class ClusterMetrics
{
    private readonly Counter<long> _missed;
    private readonly Counter<long> _failures;

    public ClusterMetrics(IMeterFactory meterFactory, Func<int> outageBuffered, Func<bool> available)
    {
        var meter = meterFactory.Create(BrokerMetrics.MeterName);
        _missed = meter.CreateCounter<long>("broker.cluster.messages.missed", description: "Topic messages a node could not deliver because they left Redis's history before it caught up");
        _failures = meter.CreateCounter<long>("broker.cluster.redis.failures", description: "Redis operations of the cluster that failed or timed out");
        meter.CreateObservableGauge("broker.cluster.outage_buffer.messages", outageBuffered, description: "Queue messages held on this node while Redis is unreachable (limit cluster-outage-buffer)");
        meter.CreateObservableGauge("broker.cluster.redis.available", () => available() ? 1 : 0, description: "1 while this node's Redis connection is up");
    }

    public void Missed(long count) => _missed.Add(count);

    public void Failure() => _failures.Add(1);
}
