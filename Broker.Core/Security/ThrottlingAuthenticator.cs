using System.Net;
using Broker.Sessions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Security;

/// <summary>
/// Puts <see cref="LoginThrottle"/> in front of whichever <see cref="IStompAuthenticator"/> is registered:
/// a CONNECT with a login waits its delay (an awaited timer of the injected <see cref="TimeProvider"/>: no
/// thread is held, no other client waits) or is refused unchecked, and a failure is counted, logged
/// (login and address, never the passcode) and metered. An attempt that must wait for others of its login or
/// address waits at most <paramref name="maxWait"/> (<c>Broker:ConnectTimeout</c>).
/// </summary>
internal sealed class ThrottlingAuthenticator(
    IStompAuthenticator inner, LoginThrottle throttle, SecurityMetrics metrics, TimeProvider time, ILogger logger, LoginThrottlingOptions options, TimeSpan maxWait)
    : IStompAuthenticator
{
    public const string RefusedMessage = "too many failed logins: try again later";

    public const string TooManyWaitingMessage = "too many logins waiting for this login or address (max-waiting-logins): try again later";

    public const string WaitTimedOutMessage = "logins of this login or address are busy: no turn to check the passcode within ConnectTimeout; try again later";

    public static IStompAuthenticator Wrap(IServiceProvider services, IStompAuthenticator inner)
    {
        var options = services.GetRequiredService<IOptions<StompBrokerOptions>>().Value.LoginThrottling;
        return options.Enabled
            ? new ThrottlingAuthenticator(inner, services.GetRequiredService<LoginThrottle>(), services.GetRequiredService<SecurityMetrics>(),
                services.GetService<TimeProvider>() ?? TimeProvider.System, services.GetRequiredService<ILoggerFactory>().CreateLogger("Broker.Security.LoginThrottling"), options,
                services.GetRequiredService<IOptions<StompBrokerOptions>>().Value.ConnectTimeout)
            : inner;
    }

    public async ValueTask<StompAuthResult> AuthenticateAsync(StompConnectRequest request, CancellationToken cancellationToken)
    {
        // Only a presented login is a guess; the ASP.NET user and anonymous clients pass straight through.
        if (request.Login is not { } login)
        {
            return await inner.AuthenticateAsync(request, cancellationToken).ConfigureAwait(false);
        }

        var address = request.RemoteAddress ?? (request.RemoteEndPoint as IPEndPoint)?.Address;
        var addressKey = LoginThrottle.AddressKey(address);
        var loginKey = LoginThrottle.LoginKey(login);
        var verdict = await throttle.BeginAsync(addressKey, loginKey, maxWait, cancellationToken).ConfigureAwait(false);
        switch (verdict.Outcome)
        {
            case ThrottleOutcome.LockedOut:
                metrics.LoginRefused();
                SecurityLog.LoginRefused(logger, login, address?.ToString(), verdict.RetryAfter);
                return StompAuthResult.Fail(RefusedMessage);
            case ThrottleOutcome.TooManyWaiting or ThrottleOutcome.WaitTimedOut:
                metrics.LoginBusy();
                SecurityLog.LoginBusy(logger, login, address?.ToString(), verdict.Outcome == ThrottleOutcome.TooManyWaiting ? "max-waiting-logins" : "ConnectTimeout");
                return StompAuthResult.Fail(verdict.Outcome == ThrottleOutcome.TooManyWaiting ? TooManyWaitingMessage : WaitTimedOutMessage);
        }

        StompAuthResult result;
        try
        {
            if (verdict.Delay > TimeSpan.Zero)
            {
                metrics.LoginDelayed();
                SecurityLog.LoginDelayed(logger, login, address?.ToString(), verdict.Delay);
                await Task.Delay(verdict.Delay, time, cancellationToken).ConfigureAwait(false);
            }

            result = await inner.AuthenticateAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            throttle.Abandoned(addressKey, loginKey);
            throw;
        }

        if (result.Succeeded)
        {
            throttle.Succeeded(addressKey, loginKey);
        }
        else
        {
            metrics.LoginFailed();
            foreach (var (key, failures) in throttle.Failed(addressKey, loginKey) ?? [])
            {
                SecurityLog.LockedOut(logger, key, options.LockoutDuration, failures);
            }
        }

        return result;
    }
}
