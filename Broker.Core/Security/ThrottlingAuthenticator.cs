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
/// (login and address, never the passcode) and metered.
/// </summary>
internal sealed class ThrottlingAuthenticator(IStompAuthenticator inner, LoginThrottle throttle, SecurityMetrics metrics, TimeProvider time, ILogger logger, LoginThrottlingOptions options)
    : IStompAuthenticator
{
    public const string RefusedMessage = "too many failed logins: try again later";

    public static IStompAuthenticator Wrap(IServiceProvider services, IStompAuthenticator inner)
    {
        var options = services.GetRequiredService<IOptions<StompBrokerOptions>>().Value.LoginThrottling;
        return options.Enabled
            ? new ThrottlingAuthenticator(inner, services.GetRequiredService<LoginThrottle>(), services.GetRequiredService<SecurityMetrics>(),
                services.GetService<TimeProvider>() ?? TimeProvider.System, services.GetRequiredService<ILoggerFactory>().CreateLogger("Broker.Security.LoginThrottling"), options)
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
        var verdict = throttle.Begin(addressKey, loginKey);
        if (verdict.Refused)
        {
            metrics.LoginRefused();
            SecurityLog.LoginRefused(logger, login, address?.ToString(), verdict.RetryAfter);
            return StompAuthResult.Fail(RefusedMessage);
        }

        foreach (var (key, failures) in verdict.LockedOut ?? [])
        {
            SecurityLog.LockedOut(logger, key, options.LockoutDuration, failures);
        }

        if (verdict.Delay > TimeSpan.Zero)
        {
            metrics.LoginDelayed();
            SecurityLog.LoginDelayed(logger, login, address?.ToString(), verdict.Delay);
            await Task.Delay(verdict.Delay, time, cancellationToken).ConfigureAwait(false);
        }

        var result = await inner.AuthenticateAsync(request, cancellationToken).ConfigureAwait(false);
        if (result.Succeeded)
        {
            throttle.Succeeded(addressKey, loginKey);
        }
        else
        {
            metrics.LoginFailed();
        }

        return result;
    }
}
