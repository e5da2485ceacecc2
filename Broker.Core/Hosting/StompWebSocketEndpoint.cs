using Broker.Sessions;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features.Authentication;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Broker.Hosting;

/// <summary>
/// Accepts STOMP over WebSocket, negotiating the <c>v1x.stomp</c> subprotocols. Before the upgrade:
/// the page's origin (<see cref="OriginPolicy"/>, else 403) and the connection limits
/// (<see cref="ConnectionLimiter"/>, else 503, or 429 with <c>Retry-After</c> for the connection rate).
/// </summary>
internal sealed partial class StompWebSocketEndpoint(
    StompSessionServices services,
    OriginPolicy origins,
    ConnectionLimiter limiter,
    BrokerMetrics metrics,
    ILogger<StompWebSocketEndpoint> logger,
    IHostApplicationLifetime lifetime)
{
    // Highest first: the server picks the best subprotocol the client offers; a client offering none is accepted too.
    private static readonly string[] s_subprotocols = ["v12.stomp", "v11.stomp", "v10.stomp"];

    public async Task HandleAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            await context.Response.WriteAsync("This is a STOMP-over-WebSocket endpoint: connect with a WebSocket client (subprotocol v12.stomp).\n").ConfigureAwait(false);
            return;
        }

        var remote = context.Connection.RemoteIpAddress is { } ip ? new System.Net.IPEndPoint(ip, context.Connection.RemotePort) : null;
        if (!origins.IsAllowed(context.Request))
        {
            metrics.ConnectionRefused("origin");
            OriginRefused(logger, Truncate(context.Request.Headers.Origin.ToString()), $"{context.Request.Scheme}://{context.Request.Host}", remote?.ToString());
            context.Response.StatusCode = StatusCodes.Status403Forbidden;
            await context.Response.WriteAsync("This page's origin may not open a STOMP WebSocket here (Broker:AllowedOrigins).\n").ConfigureAwait(false);
            return;
        }

        using var lease = limiter.TryAcquire(remote, out var refusal);
        if (lease is null)
        {
            // Too fast: 429 and when to come back; too many: 503 (a place frees when someone leaves).
            if (refusal.Limit == ConnectionLimiter.MaxConnectionRatePerAddressLimit)
            {
                context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                context.Response.Headers.RetryAfter = ((long)Math.Ceiling(Math.Max(1, refusal.RetryAfter.TotalSeconds))).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            else
            {
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            }

            // The connection goes with the answer: a refused client is not kept alive for its next request.
            context.Response.Headers.Connection = "close";
            await context.Response.WriteAsync(refusal.Message + "\n").ConfigureAwait(false);
            return;
        }

        var offered = context.WebSockets.WebSocketRequestedProtocols;
        var chosen = s_subprotocols.FirstOrDefault(p => offered.Contains(p, StringComparer.OrdinalIgnoreCase));
        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext { SubProtocol = chosen }).ConfigureAwait(false);
        // The user an authentication middleware set, if any: HttpContext.User would create an empty
        // principal for every anonymous connection and keep it for the connection's life.
        var user = context.Features.Get<IHttpAuthenticationFeature>()?.User;
        using var transport = new WebSocketTransport(socket, services, remote, user);
        transport.Start();
        var session = new StompSession(transport, services);
        await session.RunAsync(lifetime.ApplicationStopping).ConfigureAwait(false);
    }

    private static string Truncate(string value) => value.Length <= 200 ? value : string.Concat(value.AsSpan(0, 200), "…");

    [LoggerMessage(102, LogLevel.Information, "WebSocket upgrade refused with 403: origin {Origin} is neither {Self} nor listed in Broker:AllowedOrigins (from {Remote})")]
    private static partial void OriginRefused(ILogger logger, string origin, string self, string? remote);
}
