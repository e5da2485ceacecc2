using System.IO.Pipelines;
using Broker.Protocol;
using Broker.Sessions;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;

namespace Broker.Hosting;

/// <summary>Raw STOMP over TCP on a Kestrel endpoint (<c>listenOptions.UseStomp()</c>), TLS included when the endpoint has it.</summary>
internal sealed class StompTcpConnectionHandler(StompSessionServices services, ConnectionLimiter limiter, IHostApplicationLifetime lifetime) : ConnectionHandler
{
    /// <summary>How long a refused client has to read its ERROR before the connection is dropped.</summary>
    private static readonly TimeSpan RefusalLinger = TimeSpan.FromSeconds(2);

    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        using var lease = limiter.TryAcquire(connection.RemoteEndPoint, out var refusal);
        if (lease is null)
        {
            await RefuseAsync(connection.Transport, refusal.Message).ConfigureAwait(false);
            return;
        }

        var transport = new PipeTransport(connection.Transport.Input, connection.Transport.Output, connection.RemoteEndPoint, connection.Abort);
        var session = new StompSession(transport, services);
        await session.RunAsync(lifetime.ApplicationStopping).ConfigureAwait(false);
    }

    // STOMP 1.2 "ERROR": sent before CONNECT, since no session will start; then close.
    private static async Task RefuseAsync(IDuplexPipe transport, string message)
    {
        WriteError(transport.Output, message);
        await transport.Output.FlushAsync().ConfigureAwait(false);
        await transport.Output.CompleteAsync().ConfigureAwait(false);

        // Read and drop what the client sends (its CONNECT) until it closes or the linger ends: closing
        // with unread input makes the kernel send a reset, which can destroy the ERROR in flight.
        using var linger = new CancellationTokenSource(RefusalLinger);
        try
        {
            while (true)
            {
                var result = await transport.Input.ReadAsync(linger.Token).ConfigureAwait(false);
                transport.Input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionResetException)
        {
        }

        await transport.Input.CompleteAsync().ConfigureAwait(false);
    }

    private static void WriteError(PipeWriter output, string message)
    {
        var w = new StompFrameWriter(output, StompVersion.V12).Command(StompCommand.Error);
        w.Header(StompHeaders.Message, message);
        w.Header(StompHeaders.ContentType, "text/plain");
        w.End(System.Text.Encoding.UTF8.GetBytes(message));
    }
}
