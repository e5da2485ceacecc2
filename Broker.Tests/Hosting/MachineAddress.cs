using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using NUnit.Framework;

namespace Broker.Tests.Hosting;

/// <summary>
/// An address of this machine that is not loopback (eth0's, say). A server bound to it and a client
/// connecting to it from here talk over the machine's own stack: nothing leaves the machine, yet the
/// server sees a non-loopback peer address.
/// </summary>
internal static class MachineAddress
{
    private static readonly Lazy<IPAddress?> Found = new(Find);

    /// <summary>The address; under CI (<c>CI=true</c>) a machine without one fails the test, elsewhere it is ignored.</summary>
    public static IPAddress Require()
    {
        if (Found.Value is { } address)
        {
            return address;
        }

        const string reason = "this machine has no non-loopback address that is up (needed to see a client that is not on loopback)";
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail(reason);
        }

        Assert.Ignore(reason);
        return null!;
    }

    // IPv4 first; link-local addresses need a scope and may not be bindable, so they do not count.
    private static IPAddress? Find()
    {
        var candidates = NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses.Select(a => a.Address))
            .Where(a => !IPAddress.IsLoopback(a) && !a.IsIPv6LinkLocal && !a.IsIPv6Multicast && !(a.AddressFamily == AddressFamily.InterNetwork && a.GetAddressBytes()[0] == 169))
            .OrderBy(a => a.AddressFamily == AddressFamily.InterNetwork ? 0 : 1)
            .ToList();
        return candidates.FirstOrDefault(CanBind);
    }

    private static bool CanBind(IPAddress address)
    {
        try
        {
            using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(address, 0));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
