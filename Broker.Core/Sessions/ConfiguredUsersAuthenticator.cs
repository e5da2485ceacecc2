using Broker.Security;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Sessions;

/// <summary>
/// The default authenticator: the ASP.NET user of the request wins when authenticated; otherwise
/// <c>login</c>/<c>passcode</c> are checked against <see cref="StompBrokerOptions.Users"/> (plain or
/// <see cref="PasscodeHasher"/> hashes, in constant time); a client without credentials is anonymous
/// (and <see cref="Hosting.AnonymousAccessPolicy"/> decides whether it may stay). Plain passcodes are
/// accepted with a warning at startup.
/// </summary>
internal sealed class ConfiguredUsersAuthenticator : IStompAuthenticator, IDisposable
{
    private readonly StompBrokerOptions _options;
    private readonly CredentialStore _credentials;

    public ConfiguredUsersAuthenticator(IOptions<StompBrokerOptions> options, ILogger<ConfiguredUsersAuthenticator> logger)
    {
        _options = options.Value;
        _credentials = new CredentialStore(_options.Users, _options.LoginThrottling.MaxConcurrentPasscodeChecks);
        if (_credentials.PlainLogins.Count > 0)
        {
            SecurityLog.PlainPasscodes(logger, _credentials.PlainLogins.Count, string.Join(", ", _credentials.PlainLogins));
        }
    }

    public void Dispose() => _credentials.Dispose();

    public async ValueTask<StompAuthResult> AuthenticateAsync(StompConnectRequest request, CancellationToken cancellationToken)
    {
        if (request.User?.Identity is { IsAuthenticated: true, Name: { } name })
        {
            return StompAuthResult.Authenticated(name, request.User);
        }

        // Whether an anonymous client is let in is Hosting.AnonymousAccessPolicy's decision.
        if (_credentials.Count == 0 || request.Login is null)
        {
            return StompAuthResult.Anonymous();
        }

        return await _credentials.VerifyAsync(request.Login, request.Passcode ?? "", cancellationToken).ConfigureAwait(false)
            ? StompAuthResult.Authenticated(request.Login)
            : StompAuthResult.Fail("authentication failed: bad login or passcode");
    }
}
