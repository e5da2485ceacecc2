using System.Diagnostics.Metrics;

namespace Broker.Security;

/// <summary>Login and authorization instruments, on the broker's meter (<see cref="BrokerMetrics.MeterName"/>).</summary>
internal sealed class SecurityMetrics
{
    private readonly Counter<long> _failures;
    private readonly Counter<long> _throttled;
    private readonly Counter<long> _forgotten;
    private readonly Counter<long> _denied;

    public SecurityMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(BrokerMetrics.MeterName);
        _failures = meter.CreateCounter<long>("broker.auth.failures", "{attempt}", "CONNECT frames whose login and passcode were refused");
        _throttled = meter.CreateCounter<long>("broker.auth.throttled", "{attempt}", "Login attempts delayed (action=delayed) or refused unchecked (action=refused) after earlier failures, or refused unchecked because too many of their login or address waited for a turn (action=busy)");
        _forgotten = meter.CreateCounter<long>("broker.auth.throttle.evicted", "{entry}", "Throttling entries forgotten because max-tracked-logins was reached");
        _denied = meter.CreateCounter<long>("broker.authorization.denied", "{frame}", "SUBSCRIBE and SEND frames refused by authorization");
    }

    public void LoginFailed() => _failures.Add(1);

    public void LoginDelayed() => _throttled.Add(1, new KeyValuePair<string, object?>("action", "delayed"));

    public void LoginRefused() => _throttled.Add(1, new KeyValuePair<string, object?>("action", "refused"));

    public void LoginBusy() => _throttled.Add(1, new KeyValuePair<string, object?>("action", "busy"));

    public void ThrottleEntryEvicted() => _forgotten.Add(1);

    public void AccessDenied(StompOperation operation) =>
        _denied.Add(1, new KeyValuePair<string, object?>("operation", operation == StompOperation.Send ? "send" : "subscribe"));
}
