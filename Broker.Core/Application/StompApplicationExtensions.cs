using Broker.Durability;
using Broker.Routing;
using Broker.Sessions;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Broker.Application;

/// <summary>
/// The application API's entry points: <c>app.MapStompMessage("/chat/{room}", handler)</c>,
/// <c>app.MapStompSubscription("/chat/{room}/members", handler)</c>, and <c>.ConfigureApplication(o => ...)</c> on the
/// broker builder. <see cref="IStompMessenger"/>, <see cref="IStompSessionControl"/> come from DI; observers
/// (<see cref="IStompSessionObserver"/>) and interceptors (<see cref="IStompInterceptor"/>) are registered in it.
/// </summary>
public static class StompApplicationExtensions
{
    /// <summary>
    /// Maps SENDs to an application destination to <paramref name="handler"/>, minimal-API style. The pattern is the
    /// destination under the application prefix (<c>/chat/{room}</c> for <c>/app/chat/{room}</c>; naming the prefix too
    /// is allowed). See <see cref="StompMessageContext"/> for what the handler can take and where its return value goes.
    /// </summary>
    /// <exception cref="ArgumentException">The pattern is invalid, or a parameter cannot be bound (the message says which).</exception>
    public static IEndpointRouteBuilder MapStompMessage(this IEndpointRouteBuilder endpoints, string pattern, Delegate handler) =>
        endpoints.Map(pattern, handler, StompHandlerKind.Message);

    /// <summary>
    /// Maps SUBSCRIBEs to an application destination to <paramref name="handler"/> (Spring's <c>@SubscribeMapping</c>):
    /// its return value goes once to the new subscription, as its initial state, and nothing else ever does; UNSUBSCRIBE
    /// ends it as any other. Such subscriptions are not kept for a resume.
    /// </summary>
    public static IEndpointRouteBuilder MapStompSubscription(this IEndpointRouteBuilder endpoints, string pattern, Delegate handler) =>
        endpoints.Map(pattern, handler, StompHandlerKind.Subscription);

    /// <summary>Configures the application API (the destination prefix, handler concurrency, JSON).</summary>
    public static IStompBrokerBuilder ConfigureApplication(this IStompBrokerBuilder builder, Action<StompApplicationOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.Configure(configure);
        return builder;
    }

    /// <summary>Registers the application API's services (called by <c>AddStompBroker</c>).</summary>
    internal static void AddStompApplication(this IServiceCollection services)
    {
        services.AddOptions<StompApplicationOptions>().ValidateOnStart();
        services.AddOptions<DurableSessionOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<StompApplicationOptions>, ApplicationOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DurableSessionOptions>, ApplicationOptionsValidator>());
        services.TryAddSingleton<StompHandlerRegistry>();
        services.TryAddSingleton<AwaySessions>();
        services.TryAddSingleton<ApplicationMetrics>();
        services.TryAddSingleton<StompApplication>();
        services.TryAddSingleton<IStompMessenger, StompMessenger>();
        services.TryAddSingleton<IStompSessionControl, StompSessionControl>();
    }

    private static IEndpointRouteBuilder Map(this IEndpointRouteBuilder endpoints, string pattern, Delegate handler, StompHandlerKind kind)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        ArgumentNullException.ThrowIfNull(handler);
        var services = endpoints.ServiceProvider;
        var registry = services.GetService<StompHandlerRegistry>()
            ?? throw new InvalidOperationException("Call services.AddStompBroker() before mapping STOMP handlers.");
        var prefix = StompApplication.Prefix(services.GetRequiredService<IOptions<StompApplicationOptions>>().Value);
        var full = pattern.StartsWith(prefix + "/", StringComparison.Ordinal) ? pattern
            : pattern.StartsWith('/') ? prefix + pattern
            : throw new ArgumentException($"destination template '{pattern}' must start with '/'", nameof(pattern));
        var template = DestinationTemplate.Parse(full);
        registry.Add(HandlerBinder.Compile(handler, template, kind, services.GetService<IServiceProviderIsService>()));
        return endpoints;
    }

    /// <summary>Checks the application settings at start-up, naming the setting.</summary>
    private sealed class ApplicationOptionsValidator : IValidateOptions<StompApplicationOptions>, IValidateOptions<DurableSessionOptions>
    {
        public ValidateOptionsResult Validate(string? name, StompApplicationOptions options)
        {
            var failures = new List<string>();
            var prefix = options.DestinationPrefix?.TrimEnd('/') ?? "";
            if (prefix.Length < 2 || prefix[0] != '/' || prefix.AsSpan().ContainsAny("\r\n{}"))
            {
                failures.Add($"DestinationPrefix is '{options.DestinationPrefix}'; expected a path such as /app");
            }
            else if (Destinations.Classify(prefix + "/") != DestinationKind.Unknown)
            {
                failures.Add($"DestinationPrefix is '{options.DestinationPrefix}'; it may not be /topic, /queue or /user, which the broker serves");
            }

            if (options.MaxConcurrentHandlersPerSession < 1)
            {
                failures.Add($"MaxConcurrentHandlersPerSession is {options.MaxConcurrentHandlersPerSession}; expected 1 or more");
            }

            if (options.DisconnectDrainTimeout < TimeSpan.Zero)
            {
                failures.Add($"DisconnectDrainTimeout is {options.DisconnectDrainTimeout}; expected zero or more");
            }

            return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
        }

        public ValidateOptionsResult Validate(string? name, DurableSessionOptions options) =>
            options.MaxPerUser < 0
                ? ValidateOptionsResult.Fail($"Broker:Sessions:MaxPerUser is {options.MaxPerUser}; expected 0 (no limit) or more")
                : ValidateOptionsResult.Success;
    }
}
