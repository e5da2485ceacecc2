using Broker.Sessions;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;

namespace Broker.Hosting;

/// <summary>Raw STOMP over TCP on a Kestrel endpoint (<c>listenOptions.UseStomp()</c>).</summary>
internal sealed class StompTcpConnectionHandler(StompSessionServices services, IHostApplicationLifetime lifetime) : ConnectionHandler
{
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        var transport = new PipeTransport(connection.Transport.Input, connection.Transport.Output, connection.RemoteEndPoint, connection.Abort);
        var session = new StompSession(transport, services);
        await session.RunAsync(lifetime.ApplicationStopping).ConfigureAwait(false);
    }
}
