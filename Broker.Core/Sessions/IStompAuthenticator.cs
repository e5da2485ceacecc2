using System.Net;
using System.Security.Claims;
using System.Text;

namespace Broker.Sessions;

/// <summary>Decides who a CONNECT frame belongs to. Register your own to replace the configured-users check.</summary>
/// <remarks>Failed logins are throttled in front of whichever authenticator is registered (<c>Broker:LoginThrottling</c>).</remarks>
public interface IStompAuthenticator
{
    /// <summary>Returns the authenticated principal, or a failure whose message goes into the ERROR frame.</summary>
    ValueTask<StompAuthResult> AuthenticateAsync(StompConnectRequest request, CancellationToken cancellationToken);
}

/// <summary>What the client presented. Its text form leaves the passcode out, so logging it is safe.</summary>
/// <param name="User">The authenticated ASP.NET user of the WebSocket request, when embedded behind authentication.</param>
public sealed record StompConnectRequest(string? Login, string? Passcode, string? Host, ClaimsPrincipal? User, EndPoint? RemoteEndPoint)
{
    /// <summary>The client's address as the transport sees it; null when it has none (in-memory pipes).</summary>
    public IPAddress? RemoteAddress { get; init; }

    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append($"Login = {Login}, Passcode = {(Passcode is null ? "(none)" : "(redacted)")}, Host = {Host}, RemoteEndPoint = {RemoteEndPoint}, RemoteAddress = {RemoteAddress}");
        return true;
    }
}

/// <summary>The outcome of authentication.</summary>
public sealed record StompAuthResult
{
    private StompAuthResult(string? principal, bool anonymous, string? failure, ClaimsPrincipal? user)
    {
        Principal = principal;
        IsAnonymous = anonymous;
        Failure = failure;
        User = user;
    }

    /// <summary>The principal's name; null when anonymous or failed.</summary>
    public string? Principal { get; }

    /// <summary>The user with its claims (roles...) when the authenticator has one; authorization builds one from <see cref="Principal"/> otherwise.</summary>
    public ClaimsPrincipal? User { get; }

    public bool IsAnonymous { get; }

    public string? Failure { get; }

    public bool Succeeded => Failure is null;

    public static StompAuthResult Authenticated(string principal) => new(principal, false, null, null);

    /// <summary>Authenticated as <paramref name="user"/>, whose claims authorization rules and policies see.</summary>
    public static StompAuthResult Authenticated(string principal, ClaimsPrincipal user) => new(principal, false, null, user);

    public static StompAuthResult Anonymous() => new(null, true, null, null);

    public static StompAuthResult Fail(string message) => new(null, false, message, null);
}
