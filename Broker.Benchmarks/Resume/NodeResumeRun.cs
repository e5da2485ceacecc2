using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Broker.Benchmarks.Durability;
using Broker.Benchmarks.Load;
using Broker.Protocol;

namespace Broker.Benchmarks.Resume;

/// <summary>
/// <c>resume --nodes A,B</c>: how long a durable session that moves from node A to node B waits for
/// CONNECTED and for the last message it missed (issue 9). See <see cref="ResumeOptions.Usage"/>.
/// Each round, unmeasured: connect on A, subscribe (each SUBSCRIBE confirmed by its receipt), drop
/// the connection without DISCONNECT, wait until A has let the session go, publish the missed
/// messages on B (the last one confirmed by its receipt), open a new connection to B. Measured from
/// writing CONNECT with the token. After the last message the session DISCONNECTs (with a receipt,
/// so a duplicate that comes late is still seen), which deletes it.
/// </summary>
internal static class NodeResumeRun
{
    private const int ReceiveBuffer = 64 * 1024;

    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        ResumeOptions options;
        try
        {
            options = ResumeOptions.Parse(args);
        }
        catch (Exception e) when (e is ArgumentException or UriFormatException)
        {
            Console.Error.WriteLine(e.Message);
            Console.Error.WriteLine(ResumeOptions.Usage);
            return 2;
        }

        var connected = new LatencyHistogram();
        var replayed = new LatencyHistogram();
        var tally = new Tally();
        output.WriteLine($"resume: {options.Subscriptions} subscriptions on {options.SubscribeNode}, {options.Missed} missed messages published on " +
                         $"{options.ResumeNode}, resumed there; {options.Rounds} rounds after {options.Warmup} warm-up");
        output.WriteLine($"load average before: {LoadAverage.Read()}");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            await using var publisher = await LoadConnection.OpenAsync(options.ResumeNode, null, ReceiveBuffer, CancellationToken.None);
            await publisher.ConnectStompAsync("/", options.Login, options.Passcode, CancellationToken.None);
            for (var round = -options.Warmup; round < options.Rounds; round++)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                if (await RoundAsync(options, publisher, http, round, tally, timeout.Token) is { } times && round >= 0)
                {
                    connected.Record(times.Connected);
                    replayed.Record(times.Last);
                }
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or OperationCanceledException or System.Net.Sockets.SocketException or HttpRequestException)
        {
            tally.Errors.Add(e.Message);
        }

        string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
        output.WriteLine($"load average after: {LoadAverage.Read()}");
        output.WriteLine($"CONNECT → CONNECTED ms: p50 {F(connected.PercentileMs(50))}, p99 {F(connected.PercentileMs(99))}, max {F(connected.MaxMs)} ({connected.Count} rounds)");
        output.WriteLine($"CONNECT → last replayed MESSAGE ms: p50 {F(replayed.PercentileMs(50))}, p99 {F(replayed.PercentileMs(99))}, max {F(replayed.MaxMs)}");
        output.WriteLine($"checks: {tally.NotRecovered} not recovered, {tally.Missing} missing, {tally.Duplicates} duplicate, {tally.OutOfOrder} out of order");
        foreach (var error in tally.Errors.Distinct().Take(5))
        {
            output.WriteLine($"error: {error}");
        }

        output.WriteLine($"result: label={options.Label} rounds={connected.Count} subscriptions={options.Subscriptions} missed={options.Missed} " +
                         $"connected_p50_ms={F(connected.PercentileMs(50))} connected_p99_ms={F(connected.PercentileMs(99))} connected_max_ms={F(connected.MaxMs)} " +
                         $"replayed_p50_ms={F(replayed.PercentileMs(50))} replayed_p99_ms={F(replayed.PercentileMs(99))} replayed_max_ms={F(replayed.MaxMs)} " +
                         $"not_recovered={tally.NotRecovered} missing={tally.Missing} duplicates={tally.Duplicates} out_of_order={tally.OutOfOrder} errors={tally.Errors.Count}");
        return tally.Failed || connected.Count < options.Rounds ? 1 : 0;
    }

    /// <summary>
    /// One round; returns the microseconds from CONNECT to CONNECTED and to the last missed message, or null when
    /// CONNECTED said recovered:false (the missed messages may never come: the round is counted and ended).
    /// </summary>
    private static async Task<(long Connected, long Last)?> RoundAsync(ResumeOptions options, LoadConnection publisher, HttpClient http, int round, Tally tally, CancellationToken cancellationToken)
    {
        var topics = Enumerable.Range(0, options.Subscriptions).Select(k => $"/topic/{options.Prefix}.t{k.ToString(CultureInfo.InvariantCulture)}").ToArray();

        // 1. A durable session on A with its subscriptions.
        string token, session;
        await using (var first = await LoadConnection.OpenAsync(options.SubscribeNode, null, ReceiveBuffer, cancellationToken))
        {
            WriteConnect(first, options, null);
            await first.FlushAsync(cancellationToken);
            var hello = await NextAsync(first, cancellationToken);
            Expect(hello, StompCommand.Connected, "CONNECT on A");
            token = hello.Token ?? throw new InvalidOperationException("CONNECTED has no session-token: durable sessions are off on node A");
            session = hello.Session!;
            for (var k = 0; k < topics.Length; k++)
            {
                first.WriteSubscribe("s" + k.ToString(CultureInfo.InvariantCulture), topics[k], "auto", 0, "r" + k.ToString(CultureInfo.InvariantCulture));
            }

            await first.FlushAsync(cancellationToken);
            for (var k = 0; k < topics.Length; k++)
            {
                Expect(await NextAsync(first, cancellationToken), StompCommand.Receipt, "SUBSCRIBE on A");
            }

            // 2. Dropped without DISCONNECT (the session stays resumable).
        }

        await WaitAwayAsync(options, http, session, cancellationToken);

        // 3. The missed messages, published on B: message i to topic i mod N, its number as the body.
        for (var i = 0; i < options.Missed; i++)
        {
            var w = new StompFrameWriter(publisher.Output, StompVersion.V12).Command(StompCommand.Send);
            w.Header("destination"u8, topics[i % topics.Length]);
            if (i == options.Missed - 1)
            {
                w.Header("receipt"u8, "sent");
            }

            w.End(Encoding.ASCII.GetBytes(i.ToString(CultureInfo.InvariantCulture)));
        }

        await publisher.FlushAsync(cancellationToken);
        Expect(await NextAsync(publisher, cancellationToken), StompCommand.Receipt, "SEND on B");

        // 4. Resume on B (the TCP connection and WebSocket upgrade are not measured).
        await using var second = await LoadConnection.OpenAsync(options.ResumeNode, null, ReceiveBuffer, cancellationToken);
        var t0 = Stopwatch.GetTimestamp();
        WriteConnect(second, options, token);
        await second.FlushAsync(cancellationToken);
        var again = await NextAsync(second, cancellationToken);
        Expect(again, StompCommand.Connected, "CONNECT with the token on B");
        if (again.Resumed != "true")
        {
            throw new InvalidOperationException($"round {round}: CONNECTED on B says resumed:{again.Resumed}");
        }

        var recovered = again.Recovered == "true";
        tally.NotRecovered += recovered ? 0 : 1;
        var seen = new bool[options.Missed];
        var lastPerTopic = Enumerable.Repeat(-1, topics.Length).ToArray();
        var got = 0;
        var last = again.At;
        while (recovered && got < options.Missed)
        {
            var message = await NextAsync(second, cancellationToken);
            Expect(message, StompCommand.Message, "replay on B");
            Check(message);
            got++;
            last = message.At;
        }

        // 5. The end of the session; anything before its receipt came once too often.
        var end = new StompFrameWriter(second.Output, StompVersion.V12).Command(StompCommand.Disconnect);
        end.Header("receipt"u8, "bye");
        end.EndWithoutBody();
        await second.FlushAsync(cancellationToken);
        for (var frame = await NextAsync(second, cancellationToken); frame.Command != StompCommand.Receipt; frame = await NextAsync(second, cancellationToken))
        {
            Expect(frame, StompCommand.Message, "DISCONNECT on B");
            Check(frame);
        }

        if (!recovered)
        {
            return null;
        }

        tally.Missing += seen.Count(s => !s);
        return (Micros(again.At - t0), Micros(last - t0));

        void Check(Frame message)
        {
            if (!int.TryParse(message.Body, NumberStyles.None, CultureInfo.InvariantCulture, out var i) || i >= options.Missed ||
                message.Subscription != "s" + (i % topics.Length).ToString(CultureInfo.InvariantCulture))
            {
                tally.Errors.Add($"round {round}: unexpected MESSAGE '{message.Body}' on subscription {message.Subscription}");
                return;
            }

            if (seen[i])
            {
                tally.Duplicates++;
                return;
            }

            seen[i] = true;
            var k = i % topics.Length;
            tally.OutOfOrder += i < lastPerTopic[k] ? 1 : 0;
            lastPerTopic[k] = Math.Max(lastPerTopic[k], i);
        }
    }

    private static void WriteConnect(LoadConnection connection, ResumeOptions options, string? token)
    {
        var w = new StompFrameWriter(connection.Output, StompVersion.V12).Command(StompCommand.Connect);
        w.Header("accept-version"u8, "1.2");
        w.Header("host"u8, "/");
        w.Header("login"u8, options.Login);
        w.Header("passcode"u8, options.Passcode);
        w.Header("heart-beat"u8, "0,0");
        if (token is not null)
        {
            w.Header("session-token"u8, token);
        }

        w.EndWithoutBody();
    }

    /// <summary>
    /// Until node A lists the session as away (GET /api/sessions) and has written it to the session store (the
    /// store backlog of GET /api/stats is 0), so that node B finds it; for the settle time without an API key.
    /// </summary>
    private static async Task WaitAwayAsync(ResumeOptions options, HttpClient http, string session, CancellationToken cancellationToken)
    {
        if (options.ApiKey is null)
        {
            await Task.Delay(options.SettleMs, cancellationToken);
            return;
        }

        var a = options.SubscribeNode;
        var api = $"http://{a.Host}:{a.Port.ToString(CultureInfo.InvariantCulture)}/api/";
        var sessions = $"{api}sessions?user={Uri.EscapeDataString(options.Login)}&limit=10000";
        while (await GetAsync(sessions, json => json.GetProperty("sessions").EnumerateArray()
                   .FirstOrDefault(s => s.GetProperty("id").GetString() == session) is { ValueKind: JsonValueKind.Object } entry && entry.GetProperty("connected").GetBoolean()))
        {
            await Task.Delay(2, cancellationToken);
        }

        while (await GetAsync($"{api}stats?destinations=1", json => json.GetProperty("broker").GetProperty("storeBacklog").GetInt64() > 0))
        {
            await Task.Delay(2, cancellationToken);
        }

        async Task<bool> GetAsync(string url, Func<JsonElement, bool> test)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", options.ApiKey);
            using var response = await http.SendAsync(request, cancellationToken);
            response.EnsureSuccessStatusCode();
            using var json = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken), cancellationToken: cancellationToken);
            return test(json.RootElement);
        }
    }

    private static void Expect(Frame frame, StompCommand command, string what)
    {
        if (frame.Command != command)
        {
            throw new InvalidOperationException(frame.Command == StompCommand.Error
                ? $"{what}: ERROR from the server: {frame.Message}"
                : $"{what}: expected {command}, got {frame.Command}");
        }
    }

    private static async Task<Frame> NextAsync(LoadConnection connection, CancellationToken cancellationToken)
    {
        var one = new OneFrame();
        if (!await connection.ReadAsync(one, cancellationToken))
        {
            throw new IOException("the server closed the connection");
        }

        return one.Frame!;
    }

    private static long Micros(long ticks) => ticks * 1_000_000 / Stopwatch.Frequency;

    /// <summary>What a round looks at of one received frame, and when it was parsed.</summary>
    private sealed record Frame(StompCommand Command, long At, string? Subscription, string? Session, string? Token, string? Resumed, string? Recovered, string? Message, string Body);

    /// <summary>Takes one frame and stops the read loop (the rest stays buffered in the connection).</summary>
    private sealed class OneFrame : FrameHandler
    {
        public Frame? Frame { get; private set; }

        public override bool OnFrame(StompFrame frame)
        {
            Frame = new Frame(frame.Command, Stopwatch.GetTimestamp(), frame.GetString("subscription"u8), frame.GetString("session"u8),
                frame.GetString("session-token"u8), frame.GetString("resumed"u8), frame.GetString("recovered"u8), frame.GetString("message"u8),
                Encoding.UTF8.GetString(frame.Body));
            return false;
        }
    }

    private sealed class Tally
    {
        public int NotRecovered { get; set; }

        public int Missing { get; set; }

        public int Duplicates { get; set; }

        public int OutOfOrder { get; set; }

        public List<string> Errors { get; } = [];

        public bool Failed => NotRecovered + Missing + Duplicates + OutOfOrder + Errors.Count > 0;
    }
}
