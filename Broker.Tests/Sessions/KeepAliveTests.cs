using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Security.Claims;
using Broker.Protocol;
using Broker.Routing;
using Broker.Sessions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

/// <summary>
/// Heart-beats, the connect timeout and the send timeout, driven by the one keep-alive monitor. Time is a
/// <see cref="FakeTimeProvider"/> the test moves; the monitor's tick runs inside <see cref="FakeTimeProvider.Advance"/>.
/// </summary>
[TestFixture]
public sealed class KeepAliveTests
{
    // With the default HeartbeatMinimum (1 s) the monitor ticks every 250 ms.
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(250);

    [Test]
    public async Task The_server_sends_heart_beats_as_often_as_the_client_asks_down_to_the_minimum()
    {
        var time = new FakeTimeProvider();
        await using var harness = Harness(time);
        var client = harness.Open();
        var connected = await client.ConnectAsync(heartbeat: "0,1000");
        Assert.That(connected["heart-beat"], Is.EqualTo("1000,10000"), "sx = the 1 s the client asked for; sy = HeartbeatReceive, as it offers none");

        for (var second = 1; second <= 5; second++)
        {
            Advance(time, TimeSpan.FromSeconds(1));
            await Eventually.That(() => client.Heartbeats >= second, $"a heart-beat within second {second}");
        }

        // Up to a tick early, never once per tick: five seconds hold at most 5000 / 750 of them.
        Assert.That(client.Heartbeats, Is.InRange(5, 6));
    }

    [Test]
    public async Task A_request_below_the_minimum_or_none_gets_the_configured_intervals()
    {
        var time = new FakeTimeProvider();
        await using var harness = Harness(time, o => o.HeartbeatSend = TimeSpan.FromSeconds(4));
        var below = await harness.Open().ConnectAsync(heartbeat: "500,100");
        var none = await harness.Open().ConnectAsync(heartbeat: "0,0");
        var absent = harness.Open();
        var absentConnected = await absent.ConnectAsync();

        Assert.That(below["heart-beat"], Is.EqualTo("4000,10000"));
        Assert.That(none["heart-beat"], Is.EqualTo("4000,10000"));
        Assert.That(absentConnected["heart-beat"], Is.EqualTo("4000,10000"));

        // A client that wants none gets none, however long it stays.
        Advance(time, TimeSpan.FromSeconds(30));
        await absent.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "r"));
        await absent.ExpectReceiptAsync("r");
        Assert.That(absent.Heartbeats, Is.Zero);
    }

    [Test]
    public async Task A_client_that_stops_the_heart_beats_it_promised_is_closed_after_the_tolerance()
    {
        var time = new FakeTimeProvider();
        await using var harness = Harness(time);
        var client = harness.Open();
        var connected = await client.ConnectAsync(heartbeat: "1000,0");
        Assert.That(connected["heart-beat"], Is.EqualTo("10000,1000"), "sy = the 1 s the client offered");

        // Anything it sends keeps it open, silence within the tolerance (2 × 1 s) included.
        for (var i = 0; i < 4; i++)
        {
            Advance(time, TimeSpan.FromMilliseconds(1500));
            await client.SendFrameAsync(StompCommand.Begin, ("transaction", $"t{i}"), ("receipt", $"alive-{i}"));
            await client.ExpectReceiptAsync($"alive-{i}");
        }

        Advance(time, TimeSpan.FromMilliseconds(2500));
        var error = await client.ReceiveAsync();

        Assert.That(error.Command, Is.EqualTo(StompCommand.Error));
        Assert.That(error["message"], Does.Match(@"^heart-beat timeout: nothing received for 2\d{3} ms \(expected every 1000 ms\)$"));
        Assert.That(await client.WaitClosedAsync(), Is.True);
    }

    [Test]
    public async Task A_connection_without_CONNECT_is_closed_after_the_connect_timeout()
    {
        var time = new FakeTimeProvider();
        await using var harness = Harness(time, o => o.ConnectTimeout = TimeSpan.FromSeconds(10));
        var silent = harness.Open();
        var late = harness.Open();

        Advance(time, TimeSpan.FromSeconds(9));
        var connected = await late.ConnectAsync();
        Advance(time, TimeSpan.FromSeconds(1.5));
        var error = await silent.ReceiveAsync();

        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), "9 s is within the timeout");
        Assert.That((error.Command, error["message"]), Is.EqualTo((StompCommand.Error, "limit exceeded: connect-timeout (no CONNECT frame received in time)")));
        Assert.That(await silent.WaitClosedAsync(), Is.True);
        await late.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "r"));
        await late.ExpectReceiptAsync("r");
    }

    [Test]
    public async Task A_write_that_stalls_past_the_send_timeout_drops_the_connection()
    {
        var time = new FakeTimeProvider();
        await using var harness = Harness(time, o => o.SendTimeout = TimeSpan.FromSeconds(30));
        var transport = new StallingTransport();
        var session = new StompSession(transport, harness.Services.GetRequiredService<StompSessionServices>());
        var run = session.RunAsync(CancellationToken.None);
        await transport.SendAsync("CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\n\n\0SUBSCRIBE\nid:s\ndestination:/topic/t\nreceipt:r\n\n\0");
        await Eventually.That(() => transport.Written.Contains("receipt-id:r", StringComparison.Ordinal), "CONNECTED and RECEIPT written");

        transport.Stall();
        await harness.Services.GetRequiredService<IMessageBroker>().PublishAsync(new BrokerMessage("/topic/t", "m-1", [], "stuck"u8.ToArray()));
        await transport.FlushStarted.Task.WaitAsync(StompTestClient.DefaultTimeout);

        Advance(time, TimeSpan.FromSeconds(29));
        Assert.That(transport.Aborted, Is.False, "29 s is within the send timeout");
        Advance(time, TimeSpan.FromSeconds(1.5));
        Assert.That(transport.Aborted, Is.True);
        await run.WaitAsync(StompTestClient.DefaultTimeout);
        Assert.That(harness.Registry.Find(session.Id), Is.Null);
        Assert.That(session.ClosedBecause, Is.EqualTo(CloseReason.SlowConsumer));
    }

    [Test]
    public async Task A_client_asking_for_heart_beats_every_second_gets_them_over_a_real_socket()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);

        var connected = await client.ConnectAsync(heartbeat: "0,1000");
        await Eventually.That(() => client.Heartbeats >= 2, "two heart-beats");

        Assert.That(connected["heart-beat"], Is.EqualTo("1000,10000"));
    }

    private static SessionHarness Harness(FakeTimeProvider time, Action<StompBrokerOptions>? configure = null) =>
        new(configure, broker: b => b.Services.AddSingleton<TimeProvider>(time));

    // In steps of one monitor tick, as the clock would move.
    private static void Advance(FakeTimeProvider time, TimeSpan by)
    {
        for (var moved = TimeSpan.Zero; moved < by; moved += Tick)
        {
            time.Advance(by - moved < Tick ? by - moved : Tick);
        }
    }

    /// <summary>A transport whose flushes hang once stalled, until the session aborts it: a peer that stopped reading.</summary>
    private sealed class StallingTransport : IStompTransport
    {
        private readonly Pipe _input = new();
        private readonly ArrayBufferWriter<byte> _output = new();
        private readonly TaskCompletionSource<bool> _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Lock _gate = new();
        private string _written = "";
        private volatile bool _stalled;

        public PipeReader Input => _input.Reader;

        public IBufferWriter<byte> Output => _output;

        public EndPoint? RemoteEndPoint => null;

        public ClaimsPrincipal? User => null;

        public TaskCompletionSource FlushStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool Aborted { get; private set; }

        public string Written
        {
            get
            {
                lock (_gate)
                {
                    return _written;
                }
            }
        }

        public async Task SendAsync(string frames) => await _input.Writer.WriteAsync(System.Text.Encoding.UTF8.GetBytes(frames));

        public void Stall() => _stalled = true;

        public ValueTask<bool> FlushAsync(bool binary, CancellationToken cancellationToken)
        {
            lock (_gate)
            {
                _written += System.Text.Encoding.UTF8.GetString(_output.WrittenSpan);
                _output.Clear();
            }

            if (!_stalled)
            {
                return new ValueTask<bool>(true);
            }

            FlushStarted.TrySetResult();
            return new ValueTask<bool>(_released.Task);
        }

        public ValueTask CloseAsync()
        {
            _input.Reader.Complete();
            return ValueTask.CompletedTask;
        }

        public void Abort()
        {
            Aborted = true;
            _released.TrySetResult(false);
            _input.Reader.CancelPendingRead();
        }
    }
}
