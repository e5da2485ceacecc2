using System.Net;
using System.Text.Json;
using Broker.Protocol;
using Broker.Tests.EndToEnd;
using NUnit.Framework;

namespace Broker.Tests.Browser;

/// <summary>The HTTP API of the executable (Broker:Api:Key): the key, each route, bad input, and off without a key.</summary>
[TestFixture]
public sealed class AdminApiTests
{
    private const string Key = "api-test-key-0123456789abcdef";

    private static readonly (string Method, string Path)[] Routes =
    [
        ("GET", "/api/sessions"),
        ("GET", "/api/sessions?user=alice"),
        ("DELETE", "/api/sessions/0123456789abcdef01234567"),
        ("DELETE", "/api/users/alice/sessions"),
        ("GET", "/api/stats"),
        ("POST", "/api/publish"),
        ("POST", "/api/users/alice/messages"),
        ("GET", "/api/no-such-route"),
    ];

    private ServerProcess _server = null!;
    private string _data = null!;

    [OneTimeSetUp]
    public async Task StartServer()
    {
        _data = Path.Combine(Path.GetTempPath(), "broker-api-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_data);
        _server = await ServerProcess.StartAsync(
        [
            $"--Broker:Api:Key={Key}", "--Broker:Users:alice=pw-a", "--Broker:Users:bob=pw-b", "--Broker:Users:carol=pw-c", "--Broker:Users:dave=pw-d", "--Broker:Users:erin=pw-e", "--Broker:Users:frank=pw-f", "--Broker:Users:grace=pw-g",
            $"--Broker:Sessions:SqlitePath={Path.Combine(_data, "broker.db")}",
        ]);
    }

    [OneTimeTearDown]
    public async Task StopServer()
    {
        await _server.DisposeAsync();
        Directory.Delete(_data, recursive: true);
    }

    private AdminApiClient Api(string? key = Key) => new(_server.HttpUri, key);

    [Test]
    public async Task Every_route_answers_401_without_the_key_or_with_a_wrong_one()
    {
        using var api = Api(key: null);
        foreach (var (method, path) in Routes)
        {
            foreach (var authorization in new[] { null, "Bearer wrong-key-0123456789abcdef", "Basic " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("admin:" + Key)), $"Bearer {Key}x", Key })
            {
                var (status, body, response) = await api.SendAsync(new HttpMethod(method), path, authorization);
                Assert.That(status, Is.EqualTo(HttpStatusCode.Unauthorized), $"{method} {path} with Authorization '{authorization}'");
                Assert.That(body.GetProperty("error").GetString(), Does.Contain("Bearer"));
                Assert.That(response.Headers.WwwAuthenticate.ToString(), Is.EqualTo("Bearer"));
            }
        }
    }

    [Test]
    public async Task Sessions_lists_a_users_live_sessions_with_their_subscriptions()
    {
        await using var first = await ConnectAsync("alice", "pw-a");
        await first.SubscribeAndWaitAsync("news", "/topic/api.news");
        await using var second = await ConnectAsync("alice", "pw-a");
        await second.SubscribeAndWaitAsync("work", "/queue/api.work", "client-individual");
        await using var other = await ConnectAsync("bob", "pw-b");
        using var api = Api();

        var body = await api.GetOkAsync("/api/sessions?user=alice");
        var sessions = body.GetProperty("sessions").EnumerateArray().ToArray();
        var all = (await api.GetOkAsync("/api/sessions")).GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("user").GetString()).ToArray();

        Assert.That(sessions.Select(s => s.GetProperty("user").GetString()), Is.EqualTo(new[] { "alice", "alice" }));
        Assert.That(sessions.All(s => s.GetProperty("connected").GetBoolean() && s.GetProperty("durable").GetBoolean()), Is.True);
        Assert.That(sessions.Select(s => s.GetProperty("id").GetString()), Is.EquivalentTo(new[] { first.SessionId, second.SessionId }));
        Assert.That(sessions.Select(s => s.GetProperty("node").GetString()).Distinct().Single(), Is.EqualTo(body.GetProperty("node").GetString()).And.Not.Empty);
        var subscriptions = sessions.SelectMany(s => s.GetProperty("subscriptions").EnumerateArray())
            .Select(s => (s.GetProperty("id").GetString(), s.GetProperty("destination").GetString(), s.GetProperty("ack").GetString()));
        Assert.That(subscriptions, Is.EquivalentTo(new[] { ("news", "/topic/api.news", "auto"), ("work", "/queue/api.work", "client-individual") }));
        foreach (var s in sessions)
        {
            Assert.That(s.GetProperty("connectedAt").GetDateTimeOffset(), Is.GreaterThan(DateTimeOffset.UtcNow.AddMinutes(-1)).And.LessThanOrEqualTo(DateTimeOffset.UtcNow.AddSeconds(1)));
            Assert.That(s.GetProperty("createdAt").GetDateTimeOffset(), Is.LessThanOrEqualTo(s.GetProperty("connectedAt").GetDateTimeOffset().AddSeconds(1)));
            Assert.That(s.GetProperty("version").GetString(), Is.EqualTo("1.2"));
            Assert.That(s.GetProperty("remote").GetString(), Does.StartWith("127.0.0.1:"));
            Assert.That(s.GetProperty("pendingBytes").GetInt64(), Is.GreaterThanOrEqualTo(0));
        }

        Assert.That(all, Does.Contain("bob").And.Contain("alice"));
        Assert.That(body.GetProperty("total").GetInt32(), Is.EqualTo(2));
    }

    [Test]
    public async Task A_limit_truncates_the_list_and_says_how_many_there_are()
    {
        await using var first = await ConnectAsync("grace", "pw-g");
        await using var second = await ConnectAsync("grace", "pw-g");
        using var api = Api();

        var all = await api.GetOkAsync("/api/sessions?limit=1");
        var graces = await api.GetOkAsync("/api/sessions?user=grace&limit=1");

        Assert.That(all.GetProperty("sessions").GetArrayLength(), Is.EqualTo(1));
        Assert.That(all.GetProperty("total").GetInt32(), Is.GreaterThanOrEqualTo(2));
        Assert.That(all.GetProperty("truncated").GetBoolean(), Is.True);
        Assert.That(graces.GetProperty("sessions").GetArrayLength(), Is.EqualTo(1));
        Assert.That(graces.GetProperty("total").GetInt32(), Is.EqualTo(2));
        Assert.That(graces.GetProperty("sessions")[0].GetProperty("id").GetString(), Is.AnyOf(first.SessionId, second.SessionId));
    }

    [Test]
    public async Task Deleting_a_session_sends_its_connection_an_ERROR_and_its_token_no_longer_resumes()
    {
        await using var doomed = await ConnectAsync("carol", "pw-c");
        await doomed.SubscribeAndWaitAsync("s", "/topic/api.carol");
        await using var spared = await ConnectAsync("carol", "pw-c");
        using var api = Api();

        var (status, body, _) = await api.SendAsync(HttpMethod.Delete, $"/api/sessions/{doomed.SessionId}?reason=maintenance%20window");
        var error = await doomed.Client.ReceiveUntilAsync(StompCommand.Error);
        var closed = await doomed.Client.WaitClosedAsync();
        var left = await api.WaitForSessionsAsync("?user=carol", s => s.Length == 1, "one session of carol left");
        await using var again = await StompTestClient.ConnectTcpAsync(_server.TcpPort);
        var resumed = await again.ConnectAsync(login: "carol", passcode: "pw-c", sessionToken: doomed.Token);

        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        Assert.That(body.GetProperty("id").GetString(), Is.EqualTo(doomed.SessionId));
        Assert.That(body.GetProperty("connected").GetBoolean(), Is.True);
        Assert.That(error["message"], Is.EqualTo("maintenance window"));
        Assert.That(closed, Is.True);
        Assert.That(left.Single().GetProperty("id").GetString(), Is.EqualTo(spared.SessionId));
        Assert.That(resumed["resumed"], Is.EqualTo("false"), "a deleted session's token must not resume");
    }

    [Test]
    public async Task Deleting_a_users_sessions_ends_the_live_ones_and_the_away_ones()
    {
        var away = await ConnectAsync("dave", "pw-d");
        await away.SubscribeAndWaitAsync("later", "/topic/api.dave");
        await away.DisposeAsync(); // dropped without DISCONNECT: resumable
        await using var live = await ConnectAsync("dave", "pw-d");
        await live.SubscribeAndWaitAsync("now", "/topic/api.dave");
        using var api = Api();
        var listed = await api.WaitForSessionsAsync("?user=dave", s => s.Any(x => !x.GetProperty("connected").GetBoolean()), "dave's dropped session listed as away");

        var (status, body, _) = await api.SendAsync(HttpMethod.Delete, "/api/users/dave/sessions");
        var error = await live.Client.ReceiveUntilAsync(StompCommand.Error);
        var closed = await live.Client.WaitClosedAsync();
        await api.WaitForSessionsAsync("?user=dave", s => s.Length == 0, "no session of dave left");
        await using var resumeAway = await StompTestClient.ConnectTcpAsync(_server.TcpPort);
        var awayResumed = await resumeAway.ConnectAsync(login: "dave", passcode: "pw-d", sessionToken: away.Token);
        await using var resumeLive = await StompTestClient.ConnectTcpAsync(_server.TcpPort);
        var liveResumed = await resumeLive.ConnectAsync(login: "dave", passcode: "pw-d", sessionToken: live.Token);

        var awayEntry = listed.Single(x => !x.GetProperty("connected").GetBoolean());
        Assert.That(awayEntry.GetProperty("id").GetString(), Is.EqualTo(away.SessionId));
        Assert.That(awayEntry.GetProperty("connectedAt").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(awayEntry.GetProperty("subscriptions")[0].GetProperty("destination").GetString(), Is.EqualTo("/topic/api.dave"));
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        Assert.That((body.GetProperty("user").GetString(), body.GetProperty("ended").GetInt32()), Is.EqualTo(("dave", 2)), "one live session and one away");
        Assert.That(error["message"], Is.EqualTo("session ended by an administrator"));
        Assert.That(closed, Is.True);
        Assert.That(awayResumed["resumed"], Is.EqualTo("false"));
        Assert.That(liveResumed["resumed"], Is.EqualTo("false"));
    }

    [Test]
    public async Task Stats_counts_connections_sessions_destinations_messages_memory_and_limits()
    {
        await using var a = await ConnectAsync("erin", "pw-e");
        await a.SubscribeAndWaitAsync("t", "/topic/api.stats");
        await using var b = await ConnectAsync("erin", "pw-e");
        await b.SubscribeAndWaitAsync("t", "/topic/api.stats");
        await using var publisher = await ConnectAsync("frank", "pw-f");
        for (var i = 0; i < 3; i++)
        {
            await publisher.Client.PublishAsync("/queue/api.backlog", $"waiting {i}", ("receipt", $"q{i}"));
            await publisher.Client.ExpectReceiptAsync($"q{i}");
        }

        await publisher.Client.PublishAsync("/topic/api.stats", "hello", ("receipt", "t"));
        await publisher.Client.ExpectReceiptAsync("t");
        await a.Client.ReceiveUntilAsync(StompCommand.Message);
        using var api = Api();

        var stats = await api.GetOkAsync("/api/stats");
        var destinations = stats.GetProperty("destinations").GetProperty("items").EnumerateArray().ToDictionary(d => d.GetProperty("destination").GetString()!);
        var limits = stats.GetProperty("limits").EnumerateArray().ToDictionary(l => l.GetProperty("setting").GetString()!, l => l.GetProperty("value").GetString());

        Assert.That(stats.GetProperty("connections").GetInt32(), Is.GreaterThanOrEqualTo(3));
        Assert.That(stats.GetProperty("sessions").GetProperty("connected").GetInt32(), Is.GreaterThanOrEqualTo(3));
        Assert.That(destinations["/topic/api.stats"].GetProperty("kind").GetString(), Is.EqualTo("topic"));
        Assert.That(destinations["/topic/api.stats"].GetProperty("subscribers").GetInt32(), Is.EqualTo(2));
        Assert.That(destinations["/topic/api.stats"].GetProperty("history").GetInt32(), Is.EqualTo(1));
        Assert.That(destinations["/queue/api.backlog"].GetProperty("queueDepth").GetInt32(), Is.EqualTo(3));
        Assert.That(destinations["/queue/api.backlog"].GetProperty("subscribers").GetInt32(), Is.Zero);
        Assert.That(stats.GetProperty("messages").GetProperty("published").GetInt64(), Is.GreaterThanOrEqualTo(4));
        Assert.That(stats.GetProperty("messages").GetProperty("delivered").GetInt64(), Is.GreaterThanOrEqualTo(1));
        Assert.That(stats.GetProperty("broker").GetProperty("kind").GetString(), Is.EqualTo("inprocess"));
        Assert.That(stats.GetProperty("broker").GetProperty("queuedMessages").GetInt64(), Is.GreaterThanOrEqualTo(3));
        Assert.That(stats.GetProperty("memory").GetProperty("workingSetBytes").GetInt64(), Is.GreaterThan(1_000_000));
        Assert.That(stats.GetProperty("memory").GetProperty("gcHeapBytes").GetInt64(), Is.GreaterThan(0));
        Assert.That(limits["Broker:MaxFrameSize"], Is.EqualTo("4194304"));
        Assert.That(limits["Broker:MaxPendingBytes"], Is.EqualTo("16777216"));
        Assert.That(stats.GetProperty("rates").GetProperty("intervalSeconds").GetDouble(), Is.EqualTo(2));
    }

    [TestCase("GET", "/api/sessions?user=", "'user'")]
    [TestCase("GET", "/api/sessions?user=%20", "'user'")]
    [TestCase("GET", "/api/sessions?limit=many", "'limit'")]
    [TestCase("GET", "/api/sessions?limit=0", "'limit'")]
    [TestCase("GET", "/api/sessions?limit=10001", "'limit'")]
    [TestCase("GET", "/api/stats?destinations=-1", "'destinations'")]
    [TestCase("GET", "/api/stats?destinations=1001", "'destinations'")]
    [TestCase("DELETE", "/api/sessions/not%20an%20id", "not a session id")]
    [TestCase("DELETE", "/api/users/%20/sessions", "login")]
    [TestCase("DELETE", "/api/users/alice/sessions?reason=", "'reason'")]
    [TestCase("DELETE", "/api/users/alice/sessions?reason=two%0Alines", "'reason'")]
    public async Task Bad_input_gets_400_with_a_message_naming_it(string method, string path, string named)
    {
        using var api = Api();

        var (status, body, _) = await api.SendAsync(new HttpMethod(method), path);

        Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest), body.ToString());
        Assert.That(body.GetProperty("error").GetString(), Does.Contain(named));
    }

    [Test]
    public async Task A_reason_longer_than_the_limit_gets_400()
    {
        using var api = Api();

        var (status, body, _) = await api.SendAsync(HttpMethod.Delete, "/api/users/alice/sessions?reason=" + new string('x', 201));

        Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(body.GetProperty("error").GetString(), Does.Contain("200"));
    }

    [Test]
    public async Task An_unknown_session_or_route_gets_404_with_the_key()
    {
        using var api = Api();

        var (session, sessionBody, _) = await api.SendAsync(HttpMethod.Delete, "/api/sessions/0123456789abcdef01234567");
        var (route, routeBody, _) = await api.SendAsync(HttpMethod.Get, "/api/no-such-route");

        Assert.That(session, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(sessionBody.GetProperty("error").GetString(), Does.Contain("0123456789abcdef01234567"));
        Assert.That(route, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(routeBody.GetProperty("error").GetString(), Does.Contain("/api/no-such-route"));
    }

    [Test]
    public async Task The_dashboard_page_is_served_without_the_key_from_this_origin_only()
    {
        using var http = new HttpClient { BaseAddress = _server.HttpUri };

        using var page = await http.GetAsync("/admin");
        var html = await page.Content.ReadAsStringAsync();
        using var script = await http.GetAsync("/admin/admin.js");

        Assert.That(page.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(page.Content.Headers.ContentType?.MediaType, Is.EqualTo("text/html"));
        Assert.That(page.Headers.GetValues("Content-Security-Policy").Single(), Does.Contain("script-src 'self'").And.Contain("frame-ancestors 'none'"));
        Assert.That(html, Does.Not.Contain("http://").And.Not.Contain("https://"), "nothing is fetched from elsewhere");
        Assert.That(script.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(await script.Content.ReadAsStringAsync(), Does.Contain("/api/stats"));
    }

    [Test]
    public async Task Without_a_key_the_dashboard_and_the_api_are_404_and_the_log_says_how_to_turn_them_on()
    {
        await using var server = await ServerProcess.StartAsync(["--Broker:Sessions:Store=memory"]);
        using var http = new HttpClient { BaseAddress = server.HttpUri };

        using var admin = await http.GetAsync("/admin");
        using var stats = await http.GetAsync("/api/stats");
        using var sessions = await http.GetAsync("/api/sessions");

        Assert.That(admin.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(stats.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(sessions.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(server.Output, Does.Contain("admin dashboard off: set Broker:Api:Key"));
    }

    [Test]
    public async Task A_key_too_short_to_be_a_secret_stops_the_start_with_one_line_naming_the_setting()
    {
        var (exitCode, _, error) = await ServerProcess.RunToExitAsync(["--Broker:Api:Key=k3y-s3cr3t"], TimeSpan.FromSeconds(30));

        Assert.That(exitCode, Is.EqualTo(1));
        Assert.That(error.Trim(), Does.StartWith("broker: cannot start: Broker:Api:Key is set but has 10 characters"));
        Assert.That(error.Trim().Split('\n'), Has.Length.EqualTo(1));
        Assert.That(error, Does.Not.Contain("k3y-s3cr3t"), "the key itself is never printed");
    }

    private async Task<DurableClient> ConnectAsync(string login, string passcode)
    {
        var client = await StompTestClient.ConnectTcpAsync(_server.TcpPort);
        var connected = await client.ConnectAsync(login: login, passcode: passcode);
        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
        return new DurableClient(client, connected["session"]!, connected["session-token"]!);
    }

    /// <summary>A STOMP client with the session id and token its CONNECTED carried.</summary>
    private sealed record DurableClient(StompTestClient Client, string SessionId, string Token) : IAsyncDisposable
    {
        public Task SubscribeAndWaitAsync(string id, string destination, string ack = "auto") => Client.SubscribeAndWaitAsync(id, destination, ack);

        public ValueTask DisposeAsync() => Client.DisposeAsync();
    }
}
