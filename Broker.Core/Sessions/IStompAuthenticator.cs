using System.Net;
using System.Security.Claims;

namespace Broker.Sessions;

/// <summary>Decides who a CONNECT frame belongs to. Register your own to replace the configured-users check.</summary>
public interface IStompAuthenticator
{
    /// <summary>Returns the authenticated principal, or a failure whose message goes into the ERROR frame.</summary>
    ValueTask<StompAuthResult> AuthenticateAsync(StompConnectRequest request, CancellationToken cancellationToken);
}

/// <summary>What the client presented.</summary>
/// <param name="User">The authenticated ASP.NET user of the WebSocket request, when embedded behind authentication.</param>
public sealed record StompConnectRequest(string? Login, string? Passcode, string? Host, ClaimsPrincipal? User, EndPoint? RemoteEndPoint);

/// <summary>The outcome of authentication.</summary>
public sealed record StompAuthResult
{
    private StompAuthResult(string? principal, bool anonymous, string? failure)
    {
        Principal = principal;
        IsAnonymous = anonymous;
        Failure = failure;
    }

    /// <summary>The principal's name; null when anonymous or failed.</summary>
    public string? Principal { get; }

    public bool IsAnonymous { get; }

    public string? Failure { get; }

    public bool Succeeded => Failure is null;

    public static StompAuthResult Authenticated(string principal) => new(principal, false, null);

    public static StompAuthResult Anonymous() => new(null, true, null);

    public static StompAuthResult Fail(string message) => new(null, false, message);
}
