using System.Security.Claims;
using System.Text.Encodings.Web;
using Broker.Protocol;
using Broker.Sessions;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace Broker.Tests.EndToEnd;

[TestFixture]
public sealed class EmbeddingTests
{
    [Test]
    public async Task The_authenticated_aspnet_user_of_the_websocket_request_is_the_principal()
    {
        await using var server = await TestServer.StartAsync(
            o => o.AllowAnonymous = false,
            services => services.AddAuthentication("Header").AddScheme<AuthenticationSchemeOptions, HeaderAuthenticationHandler>("Header", null),
            app => app.UseAuthentication());
        var (client, _) = await StompTestClient.ConnectWebSocketAsync(new Uri(server.WebSocketUri + "?user=carol"), "v12.stomp");
        await using var __ = client;

        var connected = await client.ConnectAsync();

        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
        Assert.That(connected["user-name"], Is.EqualTo("carol"));
    }

    [Test]
    public async Task A_custom_authenticator_replaces_the_configured_users()
    {
        await using var server = await TestServer.StartAsync(services: s => s.AddSingleton<IStompAuthenticator, TokenAuthenticator>());
        await using var good = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await using var bad = await StompTestClient.ConnectTcpAsync(server.TcpPort);

        var accepted = await good.ConnectAsync(login: "token", passcode: "valid-dave");
        var refused = await bad.ConnectAsync(login: "guest", passcode: "guest");

        Assert.That(accepted["user-name"], Is.EqualTo("dave"));
        Assert.That(refused.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(refused["message"], Is.EqualTo("tokens only"));
    }

    [Test]
    public async Task Live_sessions_can_be_listed_and_a_users_sessions_closed()
    {
        await using var server = await TestServer.StartAsync();
        await using var a = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connectedA = await a.ConnectAsync(login: "guest", passcode: "guest");
        await using var b = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await b.ConnectAsync();
        var registry = server.Services.GetRequiredService<StompSessionRegistry>();

        var sessions = registry.Snapshot();
        var closed = registry.CloseUser("guest", "closed by the administrator");

        Assert.That(sessions[connectedA["session"]!], Is.EqualTo("guest"));
        Assert.That(closed, Is.EqualTo(1));
        Assert.That((await a.ReceiveAsync())["message"], Is.EqualTo("closed by the administrator"));
        Assert.That(await b.TryReceiveAsync(TimeSpan.FromMilliseconds(200)), Is.Null, "the anonymous session stays");
    }

    private sealed class HeaderAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            var user = Request.Query["user"].ToString();
            if (string.IsNullOrEmpty(user))
            {
                return Task.FromResult(AuthenticateResult.NoResult());
            }

            var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, user)], Scheme.Name);
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), Scheme.Name)));
        }
    }

    private sealed class TokenAuthenticator : IStompAuthenticator
    {
        public ValueTask<StompAuthResult> AuthenticateAsync(StompConnectRequest request, CancellationToken cancellationToken) =>
            ValueTask.FromResult(request.Login == "token" && request.Passcode?.StartsWith("valid-", StringComparison.Ordinal) == true
                ? StompAuthResult.Authenticated(request.Passcode["valid-".Length..])
                : StompAuthResult.Fail("tokens only"));
    }
}
