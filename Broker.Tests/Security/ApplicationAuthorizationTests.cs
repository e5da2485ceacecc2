using Broker.Application;
using Broker.Protocol;
using Broker.Security;
using Broker.Tests.Application;
using NUnit.Framework;

namespace Broker.Tests.Security;

/// <summary>Authorization rules hold for /app/ destinations as for any other: a refused SEND never reaches its handler.</summary>
[TestFixture]
public sealed class ApplicationAuthorizationTests
{
    [Test]
    public async Task A_rule_refuses_a_send_to_an_app_destination_before_its_handler_runs()
    {
        var handled = new List<string>();
        await using var server = await ApplicationTestKit.StartAsync(
            app => app.MapStompMessage("/admin/{command}", (string command) =>
            {
                lock (handled)
                {
                    handled.Add(command);
                }

                return "done " + command;
            }),
            configure: o => o.Authorization.Rules.AddRange([
                new StompAuthorizationRule { Who = "alice", What = "send", Destination = "/app/admin/#", Access = "allow" },
                new StompAuthorizationRule { Who = "*", What = "send", Destination = "/app/admin/#", Access = "deny" },
                new StompAuthorizationRule { Who = "*", What = "*", Destination = "#", Access = "allow" },
            ]));
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server, "alice");
        await using var __ = alice;
        await alice.SubscribeAndWaitAsync("r", "/user/queue/replies");
        var (bob, _) = await ApplicationTestKit.ConnectAsync(server, "bob");
        await using var ___ = bob;

        await alice.PublishAsync("/app/admin/restart", "", ("receipt", "a"));
        var reply = await alice.ExpectMessageAsync("r");
        await alice.ExpectReceiptAsync("a");
        await bob.PublishAsync("/app/admin/wipe", "", ("receipt", "b"));
        var refused = await bob.ReceiveAsync();

        Assert.That(reply.BodyText, Does.Contain("done restart"));
        Assert.That(refused.Command, Is.EqualTo(StompCommand.Error), refused.ToString());
        Assert.That(refused["message"], Is.EqualTo("send to /app/admin/wipe is not permitted"));
        lock (handled)
        {
            Assert.That(handled, Is.EqualTo(new[] { "restart" }), "the refused SEND never reached the handler");
        }
    }
}
