using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Broker.Sessions;

/// <summary>
/// The default authenticator: the ASP.NET user of the request wins when authenticated; otherwise
/// <c>login</c>/<c>passcode</c> are checked against <see cref="StompBrokerOptions.Users"/>; a client
/// without credentials is anonymous (and <see cref="Hosting.AnonymousAccessPolicy"/> decides whether it may stay).
/// </summary>
internal sealed class ConfiguredUsersAuthenticator(IOptions<StompBrokerOptions> options) : IStompAuthenticator
{
    public ValueTask<StompAuthResult> AuthenticateAsync(StompConnectRequest request, CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (request.User?.Identity is { IsAuthenticated: true, Name: { } name })
        {
            return ValueTask.FromResult(StompAuthResult.Authenticated(name));
        }

        // Whether an anonymous client is let in is Hosting.AnonymousAccessPolicy's decision.
        if (o.Users.Count == 0 || request.Login is null)
        {
            return ValueTask.FromResult(StompAuthResult.Anonymous());
        }

        if (o.Users.TryGetValue(request.Login, out var expected) &&
            CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(expected), Encoding.UTF8.GetBytes(request.Passcode ?? "")))
        {
            return ValueTask.FromResult(StompAuthResult.Authenticated(request.Login));
        }

        return ValueTask.FromResult(StompAuthResult.Fail("authentication failed: bad login or passcode"));
    }
}
