using System.Net;
using System.Text;
using System.Text.Json;
using Broker.Protocol;
using Broker.Tests.EndToEnd;
using NUnit.Framework;

namespace Broker.Tests.Browser;

/// <summary>
/// <c>POST /api/publish</c> and <c>POST /api/users/{login}/messages</c> of the executable, as curl calls them, with real
/// STOMP clients (TCP and WebSocket) receiving what was posted; each refusal and the limit it names.
/// </summary>
[TestFixture]
public sealed class MessageApiTests
{
    private const string Key = "message-api-test-key-0123456789";
    private const int MaxFrameSize = 64 * 1024;
    private const int MaxQueueLength = 2;

    private ServerProcess _server = null!;

    [OneTimeSetUp]
    public async Task StartServer() => _server = await ServerProcess.StartAsync(
    [
        $"--Broker:Api:Key={Key}", "--Broker:Sessions:Store=memory", "--Broker:Users:alice=pw-a", "--Broker:Users:bob=pw-b",
        $"--Broker:MaxFrameSize={MaxFrameSize}", $"--Broker:MaxQueueLength={MaxQueueLength}",
    ]);

    [OneTimeTearDown]
    public async Task StopServer() => await _server.DisposeAsync();

    private AdminApiClient Api(string? key = Key) => new(_server.HttpUri, key);

    private static string Unique(string name) => $"{name}.{Guid.NewGuid():N}";

    [Test]
    public async Task A_publish_reaches_topic_subscribers_over_tcp_and_websocket_with_its_content_type_and_headers()
    {
        var topic = "/topic/" + Unique("api.prices");
        await using var tcp = await SubscribeAsync(topic);
        var (ws, _) = await StompTestClient.ConnectWebSocketAsync(_server.WebSocketUri, "v12.stomp");
        await using var _ws = ws;
        await ws.ConnectAsync(login: "bob", passcode: "pw-b");
        await ws.SubscribeAndWaitAsync("w", topic);
        using var api = Api();

        var (status, body, _) = await api.PostAsync("/api/publish", Json(new
        {
            destination = topic,
            body = "{\"price\":42}",
            contentType = "application/json",
            headers = new Dictionary<string, string> { ["priority"] = "high", ["trace-id"] = "t-1" },
        }));
        var overTcp = await tcp.ReceiveUntilAsync(StompCommand.Message);
        var overWs = await ws.ReceiveUntilAsync(StompCommand.Message);

        Assert.That(status, Is.EqualTo(HttpStatusCode.Accepted), body.ToString());
        Assert.That((body.GetProperty("destination").GetString(), body.GetProperty("bytes").GetInt32()), Is.EqualTo((topic, 12)));
        foreach (var (message, subscription) in new[] { (overTcp, "t"), (overWs, "w") })
        {
            Assert.That(message["destination"], Is.EqualTo(topic));
            Assert.That(message["subscription"], Is.EqualTo(subscription));
            Assert.That(message["content-type"], Is.EqualTo("application/json"));
            Assert.That(message["priority"], Is.EqualTo("high"));
            Assert.That(message["trace-id"], Is.EqualTo("t-1"));
            Assert.That(message["message-id"], Is.Not.Null.And.Not.Empty);
            Assert.That(message.BodyText, Is.EqualTo("{\"price\":42}"));
        }
    }

    [Test]
    public async Task A_string_body_goes_as_utf8_text_and_a_json_value_as_its_json_text()
    {
        var topic = "/topic/" + Unique("api.kinds");
        await using var client = await SubscribeAsync(topic);
        using var api = Api();

        var text = await api.PostAsync("/api/publish", Json(new { destination = topic, body = "grüße" }));
        var first = await client.ReceiveUntilAsync(StompCommand.Message);
        var json = await api.PostAsync("/api/publish", $$"""{ "destination": "{{topic}}", "body": { "price": 42, "tags": ["a"] } }""");
        var second = await client.ReceiveUntilAsync(StompCommand.Message);

        Assert.That(text.Status, Is.EqualTo(HttpStatusCode.Accepted), text.Body.ToString());
        Assert.That(first["content-type"], Is.EqualTo("text/plain;charset=utf-8"));
        Assert.That(first.Body, Is.EqualTo(Encoding.UTF8.GetBytes("grüße")));
        Assert.That(json.Status, Is.EqualTo(HttpStatusCode.Accepted), json.Body.ToString());
        Assert.That(second["content-type"], Is.EqualTo("application/json"));
        Assert.That(JsonDocument.Parse(second.Body).RootElement.GetProperty("price").GetInt32(), Is.EqualTo(42));
    }

    [Test]
    public async Task A_base64_body_reaches_a_queue_consumer_as_the_same_bytes()
    {
        var queue = "/queue/" + Unique("api.blobs");
        var bytes = new byte[] { 0, 1, 2, 0xFF, 0xFE, (byte)'\n', 0 };
        var (ws, _) = await StompTestClient.ConnectWebSocketAsync(_server.WebSocketUri, "v12.stomp");
        await using var _ws = ws;
        await ws.ConnectAsync(login: "bob", passcode: "pw-b");
        await ws.SubscribeAndWaitAsync("q", queue, "client-individual");
        using var api = Api();

        var (status, body, _) = await api.PostAsync("/api/publish", Json(new { destination = queue, bodyBase64 = Convert.ToBase64String(bytes) }));
        var message = await ws.ReceiveUntilAsync(StompCommand.Message);

        Assert.That(status, Is.EqualTo(HttpStatusCode.Accepted), body.ToString());
        Assert.That(message["content-type"], Is.EqualTo("application/octet-stream"));
        Assert.That(message.Body, Is.EqualTo(bytes));
        Assert.That(message.ArrivedAsBinary, Is.True, "bytes that are not UTF-8 go in a binary WebSocket message");
    }

    [Test]
    public async Task A_user_message_reaches_both_of_the_users_sessions_and_no_one_else()
    {
        var queue = Unique("alerts");
        await using var aliceTcp = await StompTestClient.ConnectTcpAsync(_server.TcpPort);
        await aliceTcp.ConnectAsync(login: "alice", passcode: "pw-a");
        await aliceTcp.SubscribeAndWaitAsync("a", "/user/queue/" + queue);
        var (aliceWs, _) = await StompTestClient.ConnectWebSocketAsync(_server.WebSocketUri, "v12.stomp");
        await using var _aliceWs = aliceWs;
        await aliceWs.ConnectAsync(login: "alice", passcode: "pw-a");
        await aliceWs.SubscribeAndWaitAsync("a", "/user/queue/" + queue);
        await using var bob = await StompTestClient.ConnectTcpAsync(_server.TcpPort);
        await bob.ConnectAsync(login: "bob", passcode: "pw-b");
        await bob.SubscribeAndWaitAsync("b", "/user/queue/" + queue);
        using var api = Api();

        var (status, body, _) = await api.PostAsync("/api/users/alice/messages", Json(new
        {
            destination = "/queue/" + queue,
            body = "for alice",
            headers = new Dictionary<string, string> { ["kind"] = "alert" },
        }));
        var overTcp = await aliceTcp.ReceiveUntilAsync(StompCommand.Message);
        var overWs = await aliceWs.ReceiveUntilAsync(StompCommand.Message);
        var (bobStatus, _, _) = await api.PostAsync("/api/users/bob/messages", Json(new { destination = "/queue/" + queue, body = "for bob" }));
        var bobs = await bob.ReceiveUntilAsync(StompCommand.Message);

        Assert.That(status, Is.EqualTo(HttpStatusCode.Accepted), body.ToString());
        Assert.That((body.GetProperty("user").GetString(), body.GetProperty("sessions").GetInt32()), Is.EqualTo(("alice", 2)));
        foreach (var message in new[] { overTcp, overWs })
        {
            Assert.That(message.BodyText, Is.EqualTo("for alice"));
            Assert.That(message["kind"], Is.EqualTo("alert"));
            Assert.That(message["subscription"], Is.EqualTo("a"));
            Assert.That(message["content-type"], Is.EqualTo("text/plain;charset=utf-8"));
        }

        Assert.That(bobStatus, Is.EqualTo(HttpStatusCode.Accepted));
        Assert.That(bobs.BodyText, Is.EqualTo("for bob"), "bob's first message is his own: alice's never reached him");
    }

    [Test]
    public async Task A_user_with_no_session_on_the_queue_gets_202_with_no_sessions()
    {
        using var api = Api();

        var (status, body, _) = await api.PostAsync("/api/users/nobody/messages", Json(new { destination = "/queue/alerts", body = "x" }));

        Assert.That(status, Is.EqualTo(HttpStatusCode.Accepted), body.ToString());
        Assert.That(body.GetProperty("sessions").GetInt32(), Is.Zero);
    }

    [Test]
    public async Task A_post_without_the_key_gets_401_and_is_not_delivered()
    {
        var topic = "/topic/" + Unique("api.guarded");
        await using var client = await SubscribeAsync(topic);
        using var anonymous = Api(key: null);
        using var wrong = Api(key: "wrong-key-0123456789abcdef");
        using var api = Api();

        var (none, noneBody, response) = await anonymous.PostAsync("/api/publish", Json(new { destination = topic, body = "no key" }));
        var (bad, _, _) = await wrong.PostAsync("/api/users/alice/messages", Json(new { destination = "/queue/x", body = "wrong key" }));
        var (bad2, _, _) = await wrong.PostAsync("/api/publish", Json(new { destination = topic, body = "wrong key" }));
        await api.PostAsync("/api/publish", Json(new { destination = topic, body = "with the key" }));
        var first = await client.ReceiveUntilAsync(StompCommand.Message);

        Assert.That((none, bad, bad2), Is.EqualTo((HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized)));
        Assert.That(noneBody.GetProperty("error").GetString(), Does.Contain("Bearer"));
        Assert.That(response.Headers.WwwAuthenticate.ToString(), Is.EqualTo("Bearer"));
        Assert.That(first.BodyText, Is.EqualTo("with the key"), "the refused posts published nothing");
    }

    [TestCase("not json", "not JSON")]
    [TestCase("""[1, 2]""", "array")]
    [TestCase("""{}""", "missing 'destination'")]
    [TestCase("""{ "destination": 7, "body": "x" }""", "'destination' must be a non-empty string")]
    [TestCase("""{ "destination": "/topic/a" }""", "missing 'body'")]
    [TestCase("""{ "destination": "/topic/a", "body": "x", "bodyBase64": "eA==" }""", "not both")]
    [TestCase("""{ "destination": "/topic/a", "bodyBase64": "*not base64*" }""", "'bodyBase64' must be a base64 string")]
    [TestCase("""{ "destinaton": "/topic/a", "body": "x" }""", "unknown property 'destinaton'")]
    [TestCase("""{ "destination": "/topic/a", "body": "x", "contentType": "" }""", "'contentType'")]
    [TestCase("""{ "destination": "/nowhere/a", "body": "x" }""", "unknown destination '/nowhere/a'")]
    [TestCase("""{ "destination": "/topic/", "body": "x" }""", "empty topic key")]
    [TestCase("""{ "destination": "/queue/", "body": "x" }""", "empty queue name")]
    [TestCase("""{ "destination": "/topic/prices.*", "body": "x" }""", "wildcard")]
    [TestCase("""{ "destination": "/app/chat", "body": "x" }""", "application destination")]
    [TestCase("""{ "destination": "/user/bob/queue/a", "body": "x" }""", "/api/users/{login}/messages")]
    [TestCase("""{ "destination": "/topic/a", "body": "x", "headers": ["a"] }""", "'headers' is a JSON array")]
    [TestCase("""{ "destination": "/topic/a", "body": "x", "headers": { "n": 1 } }""", "expected a string")]
    [TestCase("""{ "destination": "/topic/a", "body": "x", "headers": { "destination": "/topic/b" } }""", "header 'destination' is set by the broker")]
    [TestCase("""{ "destination": "/topic/a", "body": "x", "headers": { "content-length": "1" } }""", "header 'content-length' is set by the broker")]
    [TestCase("""{ "destination": "/topic/a", "body": "x", "headers": { "content-type": "text/html" } }""", "header 'content-type' is set by the broker")]
    [TestCase("""{ "destination": "/topic/a", "body": "x", "headers": { "message-id": "m" } }""", "header 'message-id' is set by the broker")]
    [TestCase("""{ "destination": "/topic/a", "body": "x", "headers": { "subscription": "s" } }""", "header 'subscription' is set by the broker")]
    [TestCase("""{ "destination": "/topic/a", "body": "x", "headers": { "ack": "a" } }""", "header 'ack' is set by the broker")]
    [TestCase("""{ "destination": "/topic/a", "body": "x", "headers": { "a:b": "c" } }""", "':'")]
    [TestCase("""{ "destination": "/topic/a", "body": "x", "headers": { "a": "two\nlines" } }""", "line break")]
    public async Task A_bad_publish_gets_400_saying_what_is_wrong(string json, string named)
    {
        using var api = Api();

        var (status, body, _) = await api.PostAsync("/api/publish", json);

        Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest), body.ToString());
        Assert.That(body.GetProperty("error").GetString(), Does.Contain(named));
    }

    [TestCase("alice", """{ "destination": "/topic/a", "body": "x" }""", "not a user's queue")]
    [TestCase("alice", """{ "destination": "/queue/", "body": "x" }""", "empty queue name")]
    [TestCase("alice", """{ "body": "x" }""", "missing 'destination'")]
    [TestCase("alice", """{ "destination": "/queue/a", "body": "x", "headers": { "receipt": "r" } }""", "header 'receipt' is set by the broker")]
    [TestCase("%20", """{ "destination": "/queue/a", "body": "x" }""", "login")]
    public async Task A_bad_user_message_gets_400_saying_what_is_wrong(string login, string json, string named)
    {
        using var api = Api();

        var (status, body, _) = await api.PostAsync($"/api/users/{login}/messages", json);

        Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest), body.ToString());
        Assert.That(body.GetProperty("error").GetString(), Does.Contain(named));
    }

    [Test]
    public async Task A_destination_or_headers_past_the_clients_limits_get_400_naming_the_limit()
    {
        using var api = Api();
        var headers = Enumerable.Range(0, 65).ToDictionary(i => $"h{i}", i => "v");

        var (longStatus, longBody, _) = await api.PostAsync("/api/publish", Json(new { destination = "/topic/" + new string('a', 600), body = "x" }));
        var (wordsStatus, wordsBody, _) = await api.PostAsync("/api/publish", Json(new { destination = "/topic/" + string.Join('.', Enumerable.Repeat("w", 40)), body = "x" }));
        var (countStatus, countBody, _) = await api.PostAsync("/api/publish", Json(new { destination = "/topic/a", body = "x", headers }));
        var (lineStatus, lineBody, _) = await api.PostAsync("/api/publish", Json(new { destination = "/topic/a", body = "x", headers = new Dictionary<string, string> { ["big"] = new('v', 9000) } }));

        Assert.That((longStatus, wordsStatus, countStatus, lineStatus), Is.EqualTo((HttpStatusCode.BadRequest, HttpStatusCode.BadRequest, HttpStatusCode.BadRequest, HttpStatusCode.BadRequest)));
        Assert.That(longBody.GetProperty("error").GetString(), Does.Contain("max-destination-length"));
        Assert.That(wordsBody.GetProperty("error").GetString(), Does.Contain("max-destination-words"));
        Assert.That(countBody.GetProperty("limit").GetString(), Is.EqualTo("max-headers"));
        Assert.That(countBody.GetProperty("error").GetString(), Does.Contain("Broker:MaxHeaders = 64"));
        Assert.That(lineBody.GetProperty("limit").GetString(), Is.EqualTo("max-header-line-length"));
    }

    [Test]
    public async Task A_body_over_the_frame_size_gets_413_naming_the_limit_and_is_not_delivered()
    {
        var topic = "/topic/" + Unique("api.big");
        await using var client = await SubscribeAsync(topic);
        using var api = Api();

        var (overBody, overBodyJson, _) = await api.PostAsync("/api/publish", Json(new { destination = topic, body = new string('x', MaxFrameSize + 1) }));
        var (overRequest, overRequestJson, _) = await api.PostAsync("/api/publish", Json(new { destination = topic, body = new string('x', (3 * MaxFrameSize) + (64 * 1024)) }));
        var (atLimit, _, _) = await api.PostAsync("/api/publish", Json(new { destination = topic, body = new string('y', MaxFrameSize) }));
        var first = await client.ReceiveUntilAsync(StompCommand.Message);

        Assert.That(overBody, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge), overBodyJson.ToString());
        Assert.That(overBodyJson.GetProperty("limit").GetString(), Is.EqualTo("max-frame-size"));
        Assert.That(overBodyJson.GetProperty("error").GetString(), Does.Contain($"Broker:MaxFrameSize is {MaxFrameSize}"));
        Assert.That(overRequest, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
        Assert.That(overRequestJson.GetProperty("limit").GetString(), Is.EqualTo("max-frame-size"));
        Assert.That(atLimit, Is.EqualTo(HttpStatusCode.Accepted), "a body of exactly Broker:MaxFrameSize bytes is taken");
        Assert.That(first.Body, Has.Length.EqualTo(MaxFrameSize), "the refused bodies published nothing");
    }

    [Test]
    public async Task A_full_queue_gets_409_naming_the_queue_and_the_limit()
    {
        var queue = "/queue/" + Unique("api.backlog");
        using var api = Api();

        var taken = new List<HttpStatusCode>();
        for (var i = 0; i < MaxQueueLength; i++)
        {
            taken.Add((await api.PostAsync("/api/publish", Json(new { destination = queue, body = $"m{i}" }))).Status);
        }

        var (status, body, _) = await api.PostAsync("/api/publish", Json(new { destination = queue, body = "one too many" }));
        await using var consumer = await StompTestClient.ConnectTcpAsync(_server.TcpPort);
        await consumer.ConnectAsync(login: "bob", passcode: "pw-b");
        await consumer.SubscribeAsync("q", queue);
        var bodies = new[] { (await consumer.ReceiveUntilAsync(StompCommand.Message)).BodyText, (await consumer.ReceiveUntilAsync(StompCommand.Message)).BodyText };

        Assert.That(taken, Is.All.EqualTo(HttpStatusCode.Accepted));
        Assert.That(status, Is.EqualTo(HttpStatusCode.Conflict), body.ToString());
        Assert.That(body.GetProperty("limit").GetString(), Is.EqualTo("max-queue-length"));
        Assert.That(body.GetProperty("error").GetString(), Does.Contain(queue));
        Assert.That(bodies, Is.EqualTo(new[] { "m0", "m1" }), "the queue holds what it took, in order");
    }

    [Test]
    public async Task Above_the_memory_limit_a_publish_gets_503_naming_it()
    {
        const int limit = 256 * 1024;
        await using var server = await ServerProcess.StartAsync([$"--Broker:Api:Key={Key}", "--Broker:Sessions:Store=memory", $"--Broker:MemoryLimit={limit}", "--Broker:MemoryCalculation=Budget"]);
        using var api = new AdminApiClient(server.HttpUri, Key);
        var queue = "/queue/" + Unique("api.hoard");

        var accepted = 0;
        (HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response) last = default;
        for (var i = 0; i < 20; i++)
        {
            last = await api.PostAsync("/api/publish", Json(new { destination = queue, body = new string('x', 32 * 1024) }));
            if (last.Status != HttpStatusCode.Accepted)
            {
                break;
            }

            accepted++;
        }

        Assert.That(accepted, Is.GreaterThanOrEqualTo(4), "the queue takes messages up to the limit");
        Assert.That(last.Status, Is.EqualTo(HttpStatusCode.ServiceUnavailable), last.Body.ToString());
        Assert.That(last.Body.GetProperty("limit").GetString(), Is.EqualTo("memory-limit"));
        Assert.That(last.Body.GetProperty("error").GetString(), Does.Contain("Broker:MemoryLimit"));
        Assert.That(last.Response!.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(1)));
    }

    [Test]
    public async Task A_server_whose_own_memory_is_above_the_memory_limit_gets_503_naming_it_though_it_holds_nothing()
    {
        // 32 MiB: less than the runtime alone takes, so the process's resident memory is above the limit from the start.
        const int limit = 32 * 1024 * 1024;
        await using var server = await ServerProcess.StartAsync([$"--Broker:Api:Key={Key}", "--Broker:Sessions:Store=memory", $"--Broker:MemoryLimit={limit}"]);
        using var api = new AdminApiClient(server.HttpUri, Key);

        var (status, body, response) = await api.PostAsync("/api/publish", Json(new { destination = "/topic/" + Unique("api.rss"), body = "x" }));
        Assert.That(status, Is.EqualTo(HttpStatusCode.ServiceUnavailable), body.ToString());
        Assert.That(body.GetProperty("limit").GetString(), Is.EqualTo("memory-limit"));
        Assert.That(response!.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(1)));
    }

    private static string Json<T>(T value) => JsonSerializer.Serialize(value);

    // A TCP client subscribed (id "t") to the topic, its RECEIPT received.
    private async Task<StompTestClient> SubscribeAsync(string topic)
    {
        var client = await StompTestClient.ConnectTcpAsync(_server.TcpPort);
        await client.ConnectAsync(login: "bob", passcode: "pw-b");
        await client.SubscribeAndWaitAsync("t", topic);
        return client;
    }
}
