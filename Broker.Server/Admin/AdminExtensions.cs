using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Broker.Server.Admin;

/// <summary>
/// The admin dashboard (<c>/admin</c>) and the HTTP API (<c>/api/</c>) of the executable, on only when
/// <c>Broker:Api:Key</c> is set. Without it neither route exists (404) and the start-up log says how to turn them on.
/// </summary>
internal static class AdminExtensions
{
    /// <summary>Reads <c>Broker:Api</c> (failing the start, naming the setting, for a key too short to be one) and adds what the API needs.</summary>
    public static IServiceCollection AddBrokerAdmin(this IServiceCollection services, IConfiguration configuration)
    {
        var settings = new AdminApiSettings();
        configuration.GetSection(AdminApiSettings.SectionName).Bind(settings);
        settings.Validate();
        services.TryAddSingleton(settings);
        if (!settings.Enabled)
        {
            return services;
        }

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<BrokerCounters>();
        services.TryAddSingleton<StatsSampler>();
        services.TryAddSingleton<AdminApi>();
        services.TryAddSingleton<MessageApi>();
        services.AddHostedService(sp => sp.GetRequiredService<StatsSampler>());
        return services;
    }

    /// <summary>Maps <c>/admin</c> (the page: public, it holds no data) and <c>/api/</c> (each request needs the key).</summary>
    public static IEndpointRouteBuilder MapBrokerAdmin(this IEndpointRouteBuilder endpoints)
    {
        var services = endpoints.ServiceProvider;
        var settings = services.GetRequiredService<AdminApiSettings>();
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger("Broker.Server.Admin");
        if (!settings.Enabled)
        {
            Log.AdminOff(logger);
            return endpoints;
        }

        endpoints.MapGet("/admin", static (HttpContext context) => AdminPage.Serve(context, AdminPage.Html, "text/html; charset=utf-8"));
        endpoints.MapGet("/admin/admin.js", static (HttpContext context) => AdminPage.Serve(context, AdminPage.Script, "text/javascript; charset=utf-8"));
        endpoints.MapGet("/admin/admin.css", static (HttpContext context) => AdminPage.Serve(context, AdminPage.Style, "text/css; charset=utf-8"));

        var api = endpoints.MapGroup("/api").AddEndpointFilter(new ApiKeyFilter(settings.Key!.Trim()));
        api.AddEndpointFilter(static async (context, next) =>
        {
            context.HttpContext.Response.Headers.CacheControl = "no-store";
            return await next(context);
        });
        services.GetRequiredService<AdminApi>().Map(api);
        services.GetRequiredService<MessageApi>().Map(api);
        Log.AdminOn(logger);
        return endpoints;
    }
}
