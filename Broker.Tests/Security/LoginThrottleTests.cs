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

    private static readonly TimeSpan NoLimit = TimeSpan.FromHours(1);

    // One serial attempt: begins (nothing else is in flight, so it never waits) and, if admitted, fails.
    private static (ThrottleVerdict Verdict, IReadOnlyList<(string Key, int Failures)>? Locked) Fail(LoginThrottle throttle, string? address, string login)
    {
        var pending = throttle.BeginAsync(address, login, NoLimit).AsTask();
        Assert.That(pending.IsCompleted, Is.True, "a serial attempt never waits for a turn");
        var verdict = pending.Result;
        return (verdict, verdict.Refused ? null : throttle.Failed(address, login));
    }

    private static ThrottleVerdict Begin(LoginThrottle throttle, string? address, string login)
    {
        var pending = throttle.BeginAsync(address, login, NoLimit).AsTask();
        Assert.That(pending.IsCompleted, Is.True);
        return pending.Result;
    }

    [Test]
    public void Each_failure_makes_the_next_attempt_wait_longer_up_to_the_cap()
    {
        var throttle = new LoginThrottle(Options(o => o.MaxFailuresPerLogin = 100), new FakeTimeProvider());
        var delays = Enumerable.Range(0, 7).Select(_ => Fail(throttle, Address, "login 'alice'").Verdict.Delay.TotalSeconds).ToArray();
        Assert.That(delays, Is.EqualTo(new double[] { 0, 0, 1, 2, 4, 5, 5 }));
    }

    [Test]
    public void A_login_that_reaches_its_limit_is_refused_unchecked_until_the_lockout_ends()
    {
        var time = new FakeTimeProvider();
        var throttle = new LoginThrottle(Options(), time);
        IReadOnlyList<(string, int)>? locked = null;
        for (var i = 0; i < 6; i++)
        {
            var (verdict, lockedNow) = Fail(throttle, Address, "login 'alice'");
            Assert.That(verdict.Refused, Is.False, $"attempt {i + 1} is checked");
            locked = lockedNow;
        }

        Assert.That(locked, Is.EqualTo(new[] { ("login 'alice'", 6) }), "the sixth failure locks the login");
        var refused = Begin(throttle, Address, "login 'alice'");
        Assert.That(refused.Outcome, Is.EqualTo(ThrottleOutcome.LockedOut));
        Assert.That(refused.RetryAfter, Is.EqualTo(TimeSpan.FromMinutes(5)));
        Assert.That(Begin(throttle, "address 192.0.2.8", "login 'alice'").Refused, Is.True, "per login, from any address");
        Assert.That(Fail(throttle, Address, "login 'bob'").Verdict.Refused, Is.False, "another login from the same address is checked");

        time.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1));
        var after = Fail(throttle, Address, "login 'alice'");
        Assert.That(after.Verdict.Refused, Is.False, "one attempt after the lockout");
        Assert.That(after.Locked, Is.Not.Null, "and its failure locks again at once");
        Assert.That(Begin(throttle, Address, "login 'alice'").Refused, Is.True);
    }

    [Test]
    public void An_address_is_limited_across_logins_and_refused_attempts_count_nothing()
    {
        var throttle = new LoginThrottle(Options(o => o.MaxFailuresPerAddress = 3), new FakeTimeProvider());
        for (var i = 0; i < 3; i++)
        {
            Assert.That(Fail(throttle, Address, $"login 'user{i}'").Verdict.Refused, Is.False);
        }

        var before = throttle.Count;
        for (var i = 0; i < 50; i++)
        {
            Assert.That(Begin(throttle, Address, $"login 'other{i}'").Refused, Is.True);
        }

        Assert.That(throttle.Count, Is.EqualTo(before), "a refused attempt adds no login entry");
        Assert.That(Begin(throttle, "address 192.0.2.8", "login 'user0'").Refused, Is.False, "other addresses are not affected");
    }

    [Test]
    public void Failures_older_than_the_window_are_forgotten()
    {
        var time = new FakeTimeProvider();
        var throttle = new LoginThrottle(Options(), time);
        for (var i = 0; i < 5; i++)
        {
            Fail(throttle, Address, "login 'alice'");
        }

        Assert.That(Fail(throttle, Address, "login 'alice'").Verdict.Delay, Is.EqualTo(TimeSpan.FromSeconds(5)), "locks now");
        time.Advance(TimeSpan.FromMinutes(16));
        var fresh = Begin(throttle, Address, "login 'alice'");
        Assert.That((fresh.Refused, fresh.Delay), Is.EqualTo((false, TimeSpan.Zero)), "fifteen minutes without a failure: from zero");
    }

    [Test]
    public void Success_clears_the_login_and_the_address_keeps_its_failures()
    {
        var throttle = new LoginThrottle(Options(o => o.MaxFailuresPerAddress = 4), new FakeTimeProvider());
        Fail(throttle, Address, "login 'alice'");
        Fail(throttle, Address, "login 'alice'");
        Fail(throttle, Address, "login 'alice'");
        Assert.That(Begin(throttle, Address, "login 'alice'").Delay, Is.EqualTo(TimeSpan.FromSeconds(2)));
        throttle.Succeeded(Address, "login 'alice'");
        Assert.That(Begin(throttle, Address, "login 'alice'").Delay, Is.EqualTo(TimeSpan.FromSeconds(2)),
            "the login starts over, but the address keeps its three failures (delay after 3: 2 s)");
        throttle.Succeeded(Address, "login 'alice'");
        Assert.That(Begin(throttle, Address, "login 'bob'").Refused, Is.False, "successes count nothing: the address is not locked");
    }

    [Test]
    public async Task Many_wrong_passcodes_at_once_check_no_more_than_one_after_the_other_would()
    {
        var time = new FakeTimeProvider();
        var options = Options(o => o.MaxFailuresPerLogin = 10);
        var inner = new CountingAuthenticator();
        var authenticator = Throttling(inner, options, time, NoLimit);
        var request = new StompConnectRequest("alice", "guess", null, null, new IPEndPoint(IPAddress.Loopback, 5000));

        var all = Task.WhenAll(Enumerable.Range(0, 64).Select(_ => authenticator.AuthenticateAsync(request, CancellationToken.None).AsTask()));
        await DriveAsync(time, all);

        Assert.That(inner.Calls, Is.EqualTo(10), "64 at once check MaxFailuresPerLogin passcodes, as 64 in a row would");
        Assert.That((await all).Count(r => r.Failure == ThrottlingAuthenticator.RefusedMessage), Is.EqualTo(54), "the rest are refused unchecked: locked");
        Assert.That(inner.MostAtOnce, Is.LessThanOrEqualTo(options.FreeAttempts), "no more at once than the free attempts");
    }

    [Test]
    public async Task Many_right_passcodes_at_once_all_log_in_undelayed()
    {
        var time = new FakeTimeProvider();
        var inner = new CountingAuthenticator { Accept = true };
        var authenticator = Throttling(inner, new LoginThrottlingOptions(), time, TimeSpan.FromSeconds(10));
        var request = new StompConnectRequest("guest", "guest", null, null, new IPEndPoint(IPAddress.Loopback, 5000));

        var results = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => authenticator.AuthenticateAsync(request, CancellationToken.None).AsTask()));

        Assert.That(results.Count(r => r.Succeeded), Is.EqualTo(64), "no fake time passed: nothing was delayed");
        Assert.That(inner.Calls, Is.EqualTo(64));
    }

    [Test]
    public async Task Waiting_for_a_turn_is_bounded_by_count_and_by_time()
    {
        var time = new FakeTimeProvider();
        var options = Options(o => o.MaxWaitingAttempts = 3);
        var inner = new CountingAuthenticator { Accept = true, Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        var authenticator = Throttling(inner, options, time, TimeSpan.FromSeconds(10));
        var request = new StompConnectRequest("alice", "right", null, null, new IPEndPoint(IPAddress.Loopback, 5000));

        var attempts = Enumerable.Range(0, 10).Select(_ => authenticator.AuthenticateAsync(request, CancellationToken.None).AsTask()).ToArray();
        Assert.That(inner.Calls, Is.EqualTo(2), "FreeAttempts run at once");
        Assert.That(attempts.Count(a => a.IsCompleted), Is.EqualTo(5), "three wait; the rest are refused at once");
        Assert.That(attempts.Where(a => a.IsCompleted).Select(a => a.Result.Failure), Is.All.EqualTo(ThrottlingAuthenticator.TooManyWaitingMessage));

        time.Advance(TimeSpan.FromSeconds(10));
        var waiting = attempts.Where(a => !a.IsCompleted).ToArray();
        await Task.WhenAny(Task.WhenAll(waiting.Skip(2)), Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.That(waiting.Skip(2).All(a => a.IsCompleted), Is.True, "the waiting three ended");
        Assert.That(waiting.Skip(2).Select(a => a.Result.Failure), Is.All.EqualTo(ThrottlingAuthenticator.WaitTimedOutMessage), "waited ConnectTimeout");

        inner.Gate.SetResult();
        Assert.That((await Task.WhenAll(waiting.Take(2))).Select(r => r.Succeeded), Is.All.True, "the admitted two log in");
        var again = await authenticator.AuthenticateAsync(request, CancellationToken.None);
        Assert.That(again.Succeeded, Is.True, "nothing was counted against the login");
    }

    [Test]
    public async Task Waiting_logins_get_their_turns_in_arrival_order_with_one_check_per_turn()
    {
        const int n = 500;
        var throttle = new LoginThrottle(Options(o => { o.FreeAttempts = 0; o.MaxWaitingAttempts = n; }), new FakeTimeProvider());
        Assert.That(Begin(throttle, Address, "login 'alice'").Refused, Is.False, "the first runs alone");
        var waiting = Enumerable.Range(0, n).Select(_ => throttle.BeginAsync(Address, "login 'alice'", NoLimit).AsTask()).ToArray();
        Assert.That(Begin(throttle, Address, "login 'alice'").Outcome, Is.EqualTo(ThrottleOutcome.TooManyWaiting), "MaxWaitingAttempts wait, no more");
        Assert.That(waiting.Count(t => t.IsCompleted), Is.Zero);

        var checks = throttle.StartChecks;
        for (var i = 0; i < n; i++)
        {
            throttle.Succeeded(Address, "login 'alice'");
            var verdict = await waiting[i].WaitAsync(TimeSpan.FromSeconds(10));
            Assert.That(verdict.Outcome, Is.EqualTo(ThrottleOutcome.Admitted), $"attempt {i} gets the turn");
            Assert.That(waiting.Skip(i + 1).Count(t => t.IsCompleted), Is.Zero, $"only attempt {i}, the first still waiting, gets it");
        }

        throttle.Succeeded(Address, "login 'alice'");
        Assert.That(throttle.StartChecks - checks, Is.EqualTo(n), "each ending attempt checks the one it hands its turn to: n checks, not n²/2");
    }

    [Test]
    public void The_table_is_bounded_and_forgets_the_least_recently_seen()
    {
        var throttle = new LoginThrottle(Options(o => { o.MaxTrackedEntries = 100; o.MaxFailuresPerLogin = 1000; }), new FakeTimeProvider());
        for (var i = 0; i < 5; i++)
        {
            Fail(throttle, null, "login 'target'");
        }

        for (var i = 0; i < 1000; i++)
        {
            Fail(throttle, null, $"login 'noise{i}'");
            if (i % 10 == 0)
            {
                Assert.That(Fail(throttle, null, "login 'target'").Verdict.Refused, Is.False);
            }
        }

        Assert.That(throttle.Count, Is.EqualTo(100));
        Assert.That(throttle.EvictedCount, Is.GreaterThan(900));
        Assert.That(Begin(throttle, null, "login 'target'").Delay, Is.EqualTo(TimeSpan.FromSeconds(5)), "an entry in use is kept: the target's failures still count");
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
        var authenticator = new ThrottlingAuthenticator(inner, throttle, new SecurityMetrics(new TestMeterFactory()), time, NullLogger.Instance, options, NoLimit);
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

    private static ThrottlingAuthenticator Throttling(IStompAuthenticator inner, LoginThrottlingOptions options, TimeProvider time, TimeSpan maxWait) =>
        new(inner, new LoginThrottle(options, time), new SecurityMetrics(new TestMeterFactory()), time, NullLogger.Instance, options, maxWait);

    // Moves the fake clock on until the task ends (each step lets the woken attempts run).
    private static async Task DriveAsync(FakeTimeProvider time, Task all)
    {
        for (var i = 0; i < 10_000 && !all.IsCompleted; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(500));
            await Task.WhenAny(all, Task.Delay(1));
        }

        Assert.That(all.IsCompleted, Is.True, "every attempt ended");
    }

    /// <summary>Counts passcode checks (and the most in progress at once); refuses or accepts all, optionally holding each until <see cref="Gate"/> opens.</summary>
    private sealed class CountingAuthenticator : IStompAuthenticator
    {
        private int _now;
        public int Calls;
        public int MostAtOnce;

        public bool Accept { get; init; }

        public TaskCompletionSource? Gate { get; init; }

        public async ValueTask<StompAuthResult> AuthenticateAsync(StompConnectRequest request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            var now = Interlocked.Increment(ref _now);
            InterlockedMax(ref MostAtOnce, now);
            try
            {
                if (Gate is not null)
                {
                    await Gate.Task.ConfigureAwait(false);
                }
                else
                {
                    await Task.Yield();
                }

                return Accept ? StompAuthResult.Authenticated(request.Login!) : StompAuthResult.Fail("bad");
            }
            finally
            {
                Interlocked.Decrement(ref _now);
            }
        }

        private static void InterlockedMax(ref int target, int value)
        {
            int seen;
            while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen)
            {
            }
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
