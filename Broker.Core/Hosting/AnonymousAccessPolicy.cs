using System.Net;
using Broker.Sessions;

namespace Broker.Hosting;

/// <summary>
/// Who may connect without credentials, decided once from <see cref="StompBrokerOptions.AllowAnonymous"/>
/// and whether any user is configured (RabbitMQ's "guest only from loopback", made the default):
/// <list type="bullet">
/// <item><c>AllowAnonymous: true</c> — anonymous clients from any address;</item>
/// <item><c>AllowAnonymous: false</c> — none;</item>
/// <item>unset, no users configured — from loopback only (this machine);</item>
/// <item>unset, users configured — none.</item>
/// </list>
/// It applies to whatever the authenticator answers, so a custom <see cref="IStompAuthenticator"/> that
/// returns <see cref="StompAuthResult.Anonymous"/> is held to it too.
/// </summary>
internal sealed class AnonymousAccessPolicy
{
    private readonly Mode _mode;

    public AnonymousAccessPolicy(StompBrokerOptions options) =>
        _mode = options.AllowAnonymous switch
        {
            true => Mode.Everywhere,
            false => Mode.Refused,
            null when options.Users.Count > 0 => Mode.RefusedUsersConfigured,
            null => Mode.LoopbackOnly,
        };

    private enum Mode
    {
        Everywhere,
        LoopbackOnly,
        RefusedUsersConfigured,
        Refused,
    }

    /// <summary>The authenticator's result, or a failure when it is anonymous and anonymous clients from <paramref name="remote"/> are refused.</summary>
    public StompAuthResult Apply(StompAuthResult result, EndPoint? remote)
    {
        if (!result.IsAnonymous)
        {
            return result;
        }

        return _mode switch
        {
            Mode.Everywhere => result,
            Mode.LoopbackOnly when IsLocal(remote) => result,
            Mode.LoopbackOnly => StompAuthResult.Fail("authentication required: anonymous clients are accepted from this machine only; send login and passcode"),
            _ => StompAuthResult.Fail("authentication required: send login and passcode"),
        };
    }

    /// <summary>One line for the startup log.</summary>
    public string Describe() => _mode switch
    {
        Mode.Everywhere => "Anonymous clients are accepted from any address (Broker:AllowAnonymous=true)",
        Mode.LoopbackOnly => "Anonymous clients are accepted from loopback only; clients from other addresses must log in (no users configured; Broker:AllowAnonymous=true accepts anonymous clients from anywhere)",
        Mode.RefusedUsersConfigured => "Anonymous clients are refused: users are configured, every client must log in (Broker:AllowAnonymous=true accepts anonymous clients too)",
        _ => "Anonymous clients are refused: every client must log in (Broker:AllowAnonymous=false)",
    };

    // A peer with no IP address is on this machine: in-memory pipes, Unix domain sockets, named pipes.
    private static bool IsLocal(EndPoint? remote) => remote is not IPEndPoint ip || IPAddress.IsLoopback(ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address);
}
