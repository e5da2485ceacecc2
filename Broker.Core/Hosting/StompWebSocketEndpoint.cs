using Broker.Sessions;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;

namespace Broker.Hosting;

/// <summary>Accepts STOMP over WebSocket, negotiating the <c>v1x.stomp</c> subprotocols.</summary>
internal sealed class StompWebSocketEndpoint(StompSessionServices services, IHostApplicationLifetime lifetime)
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

        var offered = context.WebSockets.WebSocketRequestedProtocols;
        var chosen = s_subprotocols.FirstOrDefault(p => offered.Contains(p, StringComparer.OrdinalIgnoreCase));
        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext { SubProtocol = chosen }).ConfigureAwait(false);
        var remote = context.Connection.RemoteIpAddress is { } ip ? new System.Net.IPEndPoint(ip, context.Connection.RemotePort) : null;
        using var transport = new WebSocketTransport(socket, services.Options.MaxFrameSize, remote, context.User);
        transport.Start();
        var session = new StompSession(transport, services);
        await session.RunAsync(lifetime.ApplicationStopping).ConfigureAwait(false);
    }
}
