using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Security;

/// <summary>
/// At startup: builds the authorization rules and the authenticator (a bad rule or a malformed passcode
/// hash stops the start with its configuration path), checks that every <c>policy:</c> rule names a
/// policy, and logs what holds (no rules = everyone may do everything; plain passcodes; throttling).
/// </summary>
internal sealed class SecurityStartupReport(IServiceProvider services, DestinationAuthorization authorization, IOptions<StompBrokerOptions> options, ILoggerFactory loggers)
    : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var logger = loggers.CreateLogger("Broker.Security");
        // Resolving the session services builds the authenticator, which checks (and warns about) Broker:Users.
        _ = services.GetRequiredService<Sessions.StompSessionServices>();
        foreach (var rule in authorization.Rules)
        {
            if (rule.Subject == RuleSubject.Policy &&
                await services.GetRequiredService<IAuthorizationPolicyProvider>().GetPolicyAsync(rule.Name!).ConfigureAwait(false) is null)
            {
                throw new InvalidOperationException($"Broker:Authorization:Rules:{rule.Index}: no ASP.NET Core authorization policy is named '{rule.Name}'");
            }
        }

        if (authorization.RuleCount > 0)
        {
            SecurityLog.AuthorizationRules(logger, authorization.RuleCount, authorization.AuthorizerCount);
        }
        else if (authorization.AuthorizerCount > 0)
        {
            SecurityLog.AuthorizationAuthorizersOnly(logger, authorization.AuthorizerCount);
        }
        else
        {
            SecurityLog.AuthorizationOpen(logger);
        }

        var throttling = options.Value.LoginThrottling;
        if (throttling.Enabled)
        {
            SecurityLog.ThrottlingOn(logger, throttling.FreeAttempts, throttling.MaxDelay, throttling.LockoutDuration, throttling.MaxFailuresPerLogin, throttling.MaxFailuresPerAddress);
        }
        else
        {
            SecurityLog.ThrottlingOff(logger);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
