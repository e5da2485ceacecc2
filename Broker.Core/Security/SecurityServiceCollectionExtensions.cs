using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Security;

/// <summary>Registers login throttling, destination authorization and their startup report (called by <c>AddStompBroker</c>).</summary>
internal static class SecurityServiceCollectionExtensions
{
    public static IServiceCollection AddStompSecurity(this IServiceCollection services)
    {
        services.TryAddSingleton<SecurityMetrics>();
        services.TryAddSingleton(sp => new LoginThrottle(
            sp.GetRequiredService<IOptions<StompBrokerOptions>>().Value.LoginThrottling,
            sp.GetService<TimeProvider>() ?? TimeProvider.System,
            sp.GetRequiredService<SecurityMetrics>()));
        services.TryAddSingleton(sp => new DestinationAuthorization(
            sp.GetRequiredService<IOptions<StompBrokerOptions>>().Value.Authorization,
            sp.GetServices<IStompAuthorizer>(),
            sp.GetService<IAuthorizationService>(),
            sp.GetRequiredService<SecurityMetrics>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Broker.Security.Authorization")));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, SecurityStartupReport>());
        return services;
    }
}
