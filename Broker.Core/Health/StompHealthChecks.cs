using System.Text.Json;
using Broker.Durability;
using Broker.Routing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Broker.Health;

/// <summary>
/// The broker's ASP.NET health checks: <c>services.AddHealthChecks().AddStompBroker()</c> and
/// <c>app.MapStompHealthChecks()</c> (<c>/health/live</c>: the process serves; <c>/health/ready</c>: the session
/// store, the relay and the Redis cluster are reachable). An embedding app may add them to its own checks.
/// </summary>
public static class StompHealthChecks
{
    /// <summary>Tag of the checks that say whether the broker can serve clients (readiness).</summary>
    public const string ReadyTag = "ready";

    /// <summary>Tag of the check that says the process serves (liveness).</summary>
    public const string LiveTag = "live";

    /// <summary>Adds <c>stomp-live</c> (always healthy while the process answers), <c>stomp-session-store</c> and <c>stomp-broker</c>.</summary>
    public static IHealthChecksBuilder AddStompBroker(this IHealthChecksBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddCheck("stomp-live", () => HealthCheckResult.Healthy("serving"), [LiveTag]);
        builder.Add(new HealthCheckRegistration("stomp-session-store",
            sp => new SessionStoreHealthCheck(sp.GetService<ISessionStore>(), sp.GetService<IOptions<DurableSessionOptions>>()?.Value ?? new DurableSessionOptions()),
            HealthStatus.Unhealthy, [ReadyTag]));
        builder.Add(new HealthCheckRegistration("stomp-broker",
            sp => sp.GetRequiredService<IMessageBroker>() is IHealthCheck check ? check : new FixedHealthCheck(HealthCheckResult.Healthy("in-process broker")),
            HealthStatus.Unhealthy, [ReadyTag]));
        return builder;
    }

    /// <summary>Maps <c>{prefix}/live</c>, <c>{prefix}/ready</c> and <c>{prefix}</c> (every check), answering JSON.</summary>
    public static IEndpointRouteBuilder MapStompHealthChecks(this IEndpointRouteBuilder endpoints, string prefix = "/health")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapHealthChecks(prefix + "/live", Options(r => r.Tags.Contains(LiveTag)));
        endpoints.MapHealthChecks(prefix + "/ready", Options(r => r.Tags.Contains(ReadyTag)));
        endpoints.MapHealthChecks(prefix, Options(null));
        return endpoints;
    }

    private static HealthCheckOptions Options(Func<HealthCheckRegistration, bool>? predicate) => new()
    {
        Predicate = predicate,
        ResponseWriter = WriteJsonAsync,
    };

    private static Task WriteJsonAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        var body = new
        {
            status = report.Status.ToString(),
            checks = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString(), description = e.Value.Description }),
        };
        return context.Response.WriteAsync(JsonSerializer.Serialize(body, JsonSerializerOptions.Web));
    }

    private sealed class FixedHealthCheck(HealthCheckResult result) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) => Task.FromResult(result);
    }
}

/// <summary>The session store answers a lookup within the store timeout (healthy too when durable sessions are off).</summary>
internal sealed class SessionStoreHealthCheck(ISessionStore? store, DurableSessionOptions options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (store is null)
        {
            return HealthCheckResult.Healthy("durable sessions are off");
        }

        var name = store.GetType().Name;
        try
        {
            // A lookup of a token nobody holds: a read every store serves, changing nothing.
            await store.FindByTokenHashAsync(new byte[32], cancellationToken).AsTask().WaitAsync(options.StoreTimeout, cancellationToken).ConfigureAwait(false);
            return HealthCheckResult.Healthy($"{name} answers");
        }
        catch (Exception ex) when (ex is SessionStoreException or TimeoutException)
        {
            return HealthCheckResult.Unhealthy($"{name} does not answer: {ex.Message}");
        }
    }
}
