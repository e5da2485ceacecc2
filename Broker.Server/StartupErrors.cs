using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;

namespace Broker.Server;

/// <summary>
/// Turns what stops the executable from starting into one line naming the setting, its value and what is
/// expected (a taken port, an invalid or unparsable setting), so an operator does not read a stack trace.
/// </summary>
internal static class StartupErrors
{
    /// <summary>One line for <paramref name="exception"/>, or null when it is not a start-up problem we recognise.</summary>
    public static string? Describe(Exception exception, ServerSettings settings)
    {
        switch (exception)
        {
            case OptionsValidationException invalid:
                return string.Join("; ", invalid.Failures);
            case IOException { InnerException: AddressInUseException } or IOException { InnerException: SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse } }:
                return TakenPort(exception.Message, settings);
            case InvalidOperationException when exception.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal):
                // "Failed to convert configuration value '1x' at 'Broker:SendTimeout' to type 'System.TimeSpan'.": names all three.
                return exception.Message;
            case InvalidOperationException or ArgumentException when exception.Message.Contains("Broker:", StringComparison.Ordinal):
                return exception.Message;
            case AggregateException { InnerExceptions.Count: 1 } aggregate:
                return Describe(aggregate.InnerExceptions[0], settings);
            default:
                return exception.InnerException is { } inner ? Describe(inner, settings) : null;
        }
    }

    private static string TakenPort(string message, ServerSettings settings)
    {
        var (setting, port) = message.Contains($":{settings.TcpPort}", StringComparison.Ordinal) && settings.TcpPort != settings.HttpPort
            ? ("Broker:Server:TcpPort", settings.TcpPort)
            : ("Broker:Server:HttpPort", settings.HttpPort);
        return $"{setting} is {port}, but port {port} on {settings.ListenAddress} is taken by another process; stop it, or choose a free port with --{setting}=<port> (0 picks one)";
    }
}
