using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Broker.Protocol;
using Broker.Tests.Interop;
using Chat;
using NUnit.Framework;

namespace Broker.Tests.Application;

/// <summary>The README's chat sample (ChatSample.cs) run as an app, and README.md held to it.</summary>
[TestFixture]
public sealed partial class ChatSampleTests
{
    /// <summary>The chat sample on test ports, with alice and bob as users.</summary>
    internal static Task<TestServer> StartChatAsync() => ApplicationTestKit.StartAsync(app => app.MapChat(), services => services.AddChat());

    [Test]
    public async Task The_chat_sample_posts_replies_refuses_empty_lines_announces_from_HTTP_and_knows_who_is_online()
    {
        await using var server = await StartChatAsync();
        var (alice, _) = await ApplicationTestKit.ConnectAsync(server);
        await using var a = alice;
        await using var bob = (await StompTestClient.ConnectWebSocketAsync(server.WebSocketUri, "v12.stomp")).Client;
        await bob.ConnectAsync(login: "bob", passcode: "bob");
        await alice.SubscribeAndWaitAsync("room", "/topic/chat.lobby");
        await alice.SubscribeAndWaitAsync("replies", "/user/queue/replies");
        await alice.SubscribeAndWaitAsync("errors", "/user/queue/errors");
        await bob.SubscribeAndWaitAsync("room", "/topic/chat.lobby");
        await bob.SubscribeAndWaitAsync("notices", "/user/queue/notices");

        await alice.SubscribeAsync("online", "/app/chat/online", receipt: "online");
        var online = await alice.ExpectMessageAsync("online");
        await alice.ExpectReceiptAsync("online");
        await alice.SendJsonAsync("/app/chat/lobby", """{"text":"hi all"}""", ("receipt", "posted"));
        var line = await alice.ExpectMessageAsync("room");
        var posted = await alice.ExpectMessageAsync("replies");
        await alice.ExpectReceiptAsync("posted");
        var bobsLine = await bob.ExpectMessageAsync("room");
        await alice.SendJsonAsync("/app/chat/lobby", """{"text":"  "}""");
        var refused = await alice.ExpectMessageAsync("errors");

        Assert.That(online.Json().EnumerateArray().Select(e => e.GetString()), Is.EqualTo(new[] { "alice", "bob" }));
        foreach (var received in new[] { line, bobsLine })
        {
            Assert.That((received.Json().GetProperty("room").GetString(), received.Json().GetProperty("from").GetString(), received.Json().GetProperty("text").GetString()),
                Is.EqualTo(("lobby", "alice", "hi all")));
        }

        Assert.That(posted.Json().GetProperty("room").GetString(), Is.EqualTo("lobby"));
        Assert.That(posted.Json().GetProperty("sentAt").GetDateTimeOffset(), Is.EqualTo(line.Json().GetProperty("sentAt").GetDateTimeOffset()));
        Assert.That(refused["message"], Is.EqualTo("a chat message needs text"));

        using var http = new HttpClient { BaseAddress = server.HttpUri };
        using var announced = await http.PostAsJsonAsync("/rooms/lobby/announcements", new ChatMessage("maintenance at noon"));
        using var noticed = await http.PostAsJsonAsync("/users/bob/notices", new ChatMessage("you have mail"));
        Assert.That(((int)announced.StatusCode, await noticed.Content.ReadAsStringAsync()), Is.EqualTo((202, """{"sessions":1}""")));
        foreach (var client in new[] { alice, bob })
        {
            var announcement = (await client.ExpectMessageAsync("room")).Json();
            Assert.That((announcement.GetProperty("from").GetString(), announcement.GetProperty("text").GetString()), Is.EqualTo(("server", "maintenance at noon")));
        }

        Assert.That((await bob.ExpectMessageAsync("notices")).Json().GetProperty("text").GetString(), Is.EqualTo("you have mail"));

        await bob.SendFrameAsync(StompCommand.Disconnect, ("receipt", "bye"));
        await bob.ExpectReceiptAsync("bye");
        await bob.WaitClosedAsync();
        await Eventually.That(async () =>
        {
            await alice.SubscribeAsync("online-again", "/app/chat/online", receipt: "again");
            var now = (await alice.ExpectMessageAsync("online-again")).Json().EnumerateArray().Select(e => e.GetString()).ToArray();
            await alice.ExpectReceiptAsync("again");
            await alice.SendFrameAsync(StompCommand.Unsubscribe, ("id", "online-again"), ("receipt", "off"));
            await alice.ExpectReceiptAsync("off");
            return now.SequenceEqual(["alice"]);
        }, "bob left the roster");
    }

    [TestCase("chat-sample")]
    [TestCase("chat-program")]
    public void The_READMEs_sample_is_the_code_the_tests_compile_and_run(string region)
    {
        var readme = File.ReadAllText(Path.Combine(ExternalClient.RepoRoot, "README.md")).ReplaceLineEndings("\n");
        var source = File.ReadAllText(Path.Combine(ExternalClient.RepoRoot, "Broker.Tests", "Application", "ChatSample.cs")).ReplaceLineEndings("\n");

        var marker = $"<!-- sample: Broker.Tests/Application/ChatSample.cs {region} -->\n```csharp\n";
        var start = readme.IndexOf(marker, StringComparison.Ordinal);
        Assert.That(start, Is.GreaterThanOrEqualTo(0), $"README.md has no block after '{marker.Trim()}'");
        var body = readme[(start + marker.Length)..];
        var shown = body[..body.IndexOf("\n```", StringComparison.Ordinal)];

        Assert.That(shown, Is.EqualTo(Region(source, region)));
    }

    // The lines between "// <name>" and "// </name>", less their common indentation.
    private static string Region(string source, string name)
    {
        var match = Regex.Match(source, $@"^[ \t]*// <{name}>\n(?<body>.*?)^[ \t]*// </{name}>$", RegexOptions.Singleline | RegexOptions.Multiline);
        Assert.That(match.Success, Is.True, $"ChatSample.cs has no region {name}");
        var lines = match.Groups["body"].Value.TrimEnd('\n').Split('\n');
        var indent = lines.Where(l => l.Trim().Length > 0).Min(l => l.Length - l.TrimStart().Length);
        return string.Join('\n', lines.Select(l => l.Length >= indent ? l[indent..].TrimEnd() : l.TrimEnd()));
    }
}
