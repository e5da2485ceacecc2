using System.Net;
using Broker.Security;
using Broker.Sessions;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace Broker.Tests.Security;

[TestFixture]
public sealed class LoginThrottleTests
{
    private const string Address = "address 192.0.2.7";

    private static LoginThrottlingOptions Options(Action<LoginThrottlingOptions>? change = null)
    {
        var options = new LoginThrottlingOptions { MaxFailuresPerLogin = 6, MaxFailuresPerAddress = 100 };
        change?.Invoke(options);
        return options;
    }

    [Test]
    public void Each_failure_makes_the_next_attempt_wait_longer_up_to_the_cap()
    {
        var throttle = new LoginThrottle(Options(o => o.MaxFailuresPerLogin = 100), new FakeTimeProvider());
        var delays = Enumerable.Range(0, 7).Select(_ => throttle.Begin(Address, "login 'alice'").Delay.TotalSeconds).ToArray();
        Assert.That(delays, Is.EqualTo(new double[] { 0, 0, 1, 2, 4, 5, 5 }));
    }

    [Test]
    public void A_login_that_reaches_its_limit_is_refused_unchecked_until_the_lockout_ends()
    {
        var time = new FakeTimeProvider();
        var throttle = new LoginThrottle(Options(), time);
        ThrottleVerdict last = default;
        for (var i = 0; i < 6; i++)
        {
            last = throttle.Begin(Address, "login 'alice'");
            Assert.That(last.Refused, Is.False, $"attempt {i + 1} is checked");
        }

        Assert.That(last.LockedOut, Is.EqualTo(new[] { ("login 'alice'", 6) }), "the sixth failure locks the login");
        var refused = throttle.Begin(Address, "login 'alice'");
        Assert.That(refused.Refused, Is.True);
        Assert.That(refused.RetryAfter, Is.EqualTo(TimeSpan.FromMinutes(5)));
        Assert.That(throttle.Begin("address 192.0.2.8", "login 'alice'").Refused, Is.True, "per login, from any address");
        Assert.That(throttle.Begin(Address, "login 'bob'").Refused, Is.False, "another login from the same address is checked");

        time.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1));
        var after = throttle.Begin(Address, "login 'alice'");
        Assert.That(after.Refused, Is.False, "one attempt after the lockout");
        Assert.That(after.LockedOut, Is.Not.Null, "and its failure locks again at once");
        Assert.That(throttle.Begin(Address, "login 'alice'").Refused, Is.True);
    }

    [Test]
    public void An_address_is_limited_across_logins_and_refused_attempts_count_nothing()
    {
        var throttle = new LoginThrottle(Options(o => o.MaxFailuresPerAddress = 3), new FakeTimeProvider());
        for (var i = 0; i < 3; i++)
        {
            Assert.That(throttle.Begin(Address, $"login 'user{i}'").Refused, Is.False);
        }

        var before = throttle.Count;
        for (var i = 0; i < 50; i++)
        {
            Assert.That(throttle.Begin(Address, $"login 'other{i}'").Refused, Is.True);
        }

        Assert.That(throttle.Count, Is.EqualTo(before), "a refused attempt adds no login entry");
        Assert.That(throttle.Begin("address 192.0.2.8", "login 'user0'").Refused, Is.False, "other addresses are not affected");
    }

    [Test]
    public void Failures_older_than_the_window_are_forgotten()
    {
        var time = new FakeTimeProvider();
        var throttle = new LoginThrottle(Options(), time);
        for (var i = 0; i < 5; i++)
        {
            throttle.Begin(Address, "login 'alice'");
        }

        Assert.That(throttle.Begin(Address, "login 'alice'").Delay, Is.EqualTo(TimeSpan.FromSeconds(5)), "locks now");
        time.Advance(TimeSpan.FromMinutes(16));
        var fresh = throttle.Begin(Address, "login 'alice'");
        Assert.That((fresh.Refused, fresh.Delay), Is.EqualTo((false, TimeSpan.Zero)), "fifteen minutes without a failure: from zero");
    }

    [Test]
    public void Success_clears_the_login_and_takes_the_address_failure_back()
    {
        var throttle = new LoginThrottle(Options(o => o.MaxFailuresPerAddress = 4), new FakeTimeProvider());
        throttle.Begin(Address, "login 'alice'");
        throttle.Begin(Address, "login 'alice'");
        throttle.Begin(Address, "login 'alice'");
        Assert.That(throttle.Begin(Address, "login 'alice'").Delay, Is.EqualTo(TimeSpan.FromSeconds(2)));
        throttle.Succeeded(Address, "login 'alice'");
        Assert.That(throttle.Begin(Address, "login 'alice'").Delay, Is.EqualTo(TimeSpan.FromSeconds(2)),
            "the login starts over, but the address keeps its three failures (delay after 3: 2 s)");
        throttle.Succeeded(Address, "login 'alice'");
        Assert.That(throttle.Begin(Address, "login 'bob'").Refused, Is.False, "the address was never locked: successes took their attempts back");
    }

    [Test]
    public void Attempts_that_arrive_together_are_counted_as_they_begin()
    {
        var throttle = new LoginThrottle(Options(o => o.MaxFailuresPerLogin = 10), new FakeTimeProvider());
        var verdicts = new ThrottleVerdict[1000];
        Parallel.For(0, verdicts.Length, i => verdicts[i] = throttle.Begin(Address, "login 'alice'"));
        Assert.That(verdicts.Count(v => !v.Refused), Is.EqualTo(10), "a thousand at once still check ten passcodes");
        Assert.That(verdicts.Count(v => !v.Refused && v.Delay == TimeSpan.Zero), Is.EqualTo(2));
    }

    [Test]
    public void The_table_is_bounded_and_forgets_the_least_recently_seen()
    {
        var throttle = new LoginThrottle(Options(o => { o.MaxTrackedEntries = 100; o.MaxFailuresPerLogin = 1000; }), new FakeTimeProvider());
        for (var i = 0; i < 5; i++)
        {
            throttle.Begin(null, "login 'target'");
        }

        for (var i = 0; i < 1000; i++)
        {
            throttle.Begin(null, $"login 'noise{i}'");
            if (i % 10 == 0)
            {
                Assert.That(throttle.Begin(null, "login 'target'").Refused, Is.False);
            }
        }

        Assert.That(throttle.Count, Is.EqualTo(100));
        Assert.That(throttle.EvictedCount, Is.GreaterThan(900));
        Assert.That(throttle.Begin(null, "login 'target'").Delay, Is.EqualTo(TimeSpan.FromSeconds(5)), "an entry in use is kept: the target's failures still count");
    }

    [Test]
    public void Keys_group_ipv6_by_64_and_hash_long_logins()
    {
        Assert.That(LoginThrottle.AddressKey(IPAddress.Parse("2001:db8:1:2:aaaa::1")), Is.EqualTo(LoginThrottle.AddressKey(IPAddress.Parse("2001:db8:1:2:bbbb::9"))));
        Assert.That(LoginThrottle.AddressKey(IPAddress.Parse("2001:db8:1:3::1")), Is.Not.EqualTo(LoginThrottle.AddressKey(IPAddress.Parse("2001:db8:1:2::1"))));
        Assert.That(LoginThrottle.AddressKey(IPAddress.Parse("::ffff:192.0.2.7")), Is.EqualTo(LoginThrottle.AddressKey(IPAddress.Parse("192.0.2.7"))));
        Assert.That(LoginThrottle.AddressKey(null), Is.Null);
        var key = LoginThrottle.LoginKey(new string('x', 8000));
        Assert.That(key, Has.Length.LessThan(100));
        Assert.That(key, Is.EqualTo(LoginThrottle.LoginKey(new string('x', 8000))));
    }

    [Test]
    public async Task The_delay_is_a_timer_of_the_time_provider_not_a_blocked_thread()
    {
        var time = new FakeTimeProvider();
        var options = Options(o => o.FreeAttempts = 0);
        var throttle = new LoginThrottle(options, time);
        var inner = new CountingAuthenticator();
        var authenticator = new ThrottlingAuthenticator(inner, throttle, new SecurityMetrics(new TestMeterFactory()), time, NullLogger.Instance, options);
        var request = new StompConnectRequest("alice", "wrong", null, null, new IPEndPoint(IPAddress.Loopback, 5000));

        var first = authenticator.AuthenticateAsync(request, CancellationToken.None).AsTask();
        Assert.That(first.IsCompleted, Is.False, "waiting 1 s on the fake clock");
        Assert.That(inner.Calls, Is.Zero, "the passcode is checked after the delay");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.That((await first).Succeeded, Is.False);
        Assert.That(inner.Calls, Is.EqualTo(1));

        var second = authenticator.AuthenticateAsync(request, CancellationToken.None).AsTask();
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.That(second.IsCompleted, Is.False, "the second waits 2 s");
        time.Advance(TimeSpan.FromSeconds(1));
        await second;
        Assert.That(inner.Calls, Is.EqualTo(2));
    }

    private sealed class CountingAuthenticator : IStompAuthenticator
    {
        public int Calls;

        public ValueTask<StompAuthResult> AuthenticateAsync(StompConnectRequest request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            return ValueTask.FromResult(StompAuthResult.Fail("bad"));
        }
    }
}

/// <summary>An <see cref="System.Diagnostics.Metrics.IMeterFactory"/> for tests that build metrics classes directly.</summary>
internal sealed class TestMeterFactory : System.Diagnostics.Metrics.IMeterFactory
{
    private readonly List<System.Diagnostics.Metrics.Meter> _meters = [];

    public System.Diagnostics.Metrics.Meter Create(System.Diagnostics.Metrics.MeterOptions options)
    {
        var meter = new System.Diagnostics.Metrics.Meter(options.Name, options.Version, options.Tags, this);
        _meters.Add(meter);
        return meter;
    }

    public void Dispose() => _meters.ForEach(m => m.Dispose());
}
