using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Broker.Benchmarks.Load;
using Broker.Protocol;

namespace Broker.Benchmarks.Attack;

/// <summary>
/// The ordinary client the attacks must not hurt: subscribed to its own topic, it SENDs one message every
/// interval and waits for the MESSAGE to come back before the next, recording each round trip in a
/// <see cref="LatencyHistogram"/>. A SEND answered by an ERROR or by the connection ending counts as lost
/// (it reconnects and goes on); so does the last one if it is still out when the drain time is over.
/// </summary>
internal sealed class OrdinaryClient(AttackOptions options)
{
    private readonly string _destination = $"/topic/attack-ordinary.{Environment.ProcessId}";
    private LoadConnection? _connection;
    private long _sequence;

    public LatencyHistogram Latency { get; } = new();

    public long Lost { get; private set; }

    public ConcurrentDictionary<string, long> Errors { get; } = new(StringComparer.Ordinal);

    /// <summary>Connects, subscribes (waiting for its RECEIPT) and does one round trip, so that the attack starts against a client that works.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await ConnectAsync(cancellationToken);
        if (!await RoundTripAsync(cancellationToken))
        {
            throw new InvalidOperationException($"the first round trip on {_destination} failed: {string.Join("; ", Errors.Keys)}");
        }
    }

    /// <summary>Round trips every interval until <paramref name="stop"/>; <paramref name="abort"/> cuts the last one short.</summary>
    public async Task RunAsync(CancellationToken stop, CancellationToken abort)
    {
        var interval = Stopwatch.Frequency * options.Interval.Ticks / TimeSpan.TicksPerSecond;
        var next = Stopwatch.GetTimestamp();
        while (!stop.IsCancellationRequested)
        {
            try
            {
                if (_connection is null)
                {
                    await ConnectAsync(abort);
                }

                await RoundTripAsync(abort);
            }
            catch (OperationCanceledException) when (abort.IsCancellationRequested)
            {
                Lost++;
                Errors.AddOrUpdate("no MESSAGE before the drain time ended", 1, static (_, n) => n + 1);
                break;
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or System.Net.WebSockets.WebSocketException or InvalidOperationException)
            {
                // Connecting failed (refused, or an ERROR instead of CONNECTED): try again at the next tick.
                Errors.AddOrUpdate($"connect: {e.Message}", 1, static (_, n) => n + 1);
                await DropAsync();
            }

            next += interval;
            var wait = (next - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
            if (wait > 0)
            {
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(wait), stop);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            else
            {
                next = Stopwatch.GetTimestamp(); // behind (a slow round trip): no burst to catch up
            }
        }

        await DropAsync();
    }

    private async Task ConnectAsync(CancellationToken cancellationToken)
    {
        var connection = await LoadConnection.OpenAsync(options.Target, null, 16 * 1024, cancellationToken);
        try
        {
            await connection.ConnectStompAsync("/", options.Login, options.Passcode, cancellationToken);
            connection.WriteSubscribe("0", _destination, "auto", 0, "subscribed");
            await connection.FlushAsync(cancellationToken);
            await connection.ExpectAsync(StompCommand.Receipt, cancellationToken);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        _connection = connection;
    }

    // One SEND and its MESSAGE; false (and counted lost) when an ERROR or the connection's end came instead.
    private async Task<bool> RoundTripAsync(CancellationToken cancellationToken)
    {
        var connection = _connection!;
        var sequence = ++_sequence;
        Span<byte> body = stackalloc byte[20];
        Utf8Formatter.TryFormat(sequence, body, out var length);
        var w = new StompFrameWriter(connection.Output, StompVersion.V12).Command(StompCommand.Send);
        w.Header("destination"u8, _destination);
        w.Header("content-type"u8, "text/plain");
        w.End(body[..length]);

        var started = Stopwatch.GetTimestamp();
        var reply = new Reply(sequence);
        bool open;
        try
        {
            await connection.FlushAsync(cancellationToken);
            open = await connection.ReadAsync(reply, cancellationToken);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or System.Net.WebSockets.WebSocketException)
        {
            open = false;
        }

        if (reply.Delivered)
        {
            Latency.Record(Stopwatch.GetElapsedTime(started).Ticks / 10);
            return true;
        }

        Lost++;
        var why = reply.Error is { } error ? $"ERROR: {error}" : open ? "unexpected frame" : "connection closed";
        Errors.AddOrUpdate(why, 1, static (_, n) => n + 1);
        await DropAsync();
        return false;
    }

    private async Task DropAsync()
    {
        if (_connection is { } connection)
        {
            _connection = null;
            await connection.DisposeAsync();
        }
    }

    /// <summary>Waits for the MESSAGE carrying <c>sequence</c> (earlier ones, if any, are skipped) or an ERROR.</summary>
    private sealed class Reply(long sequence) : FrameHandler
    {
        public bool Delivered { get; private set; }

        public string? Error { get; private set; }

        public override bool OnFrame(StompFrame frame)
        {
            if (frame.Command == StompCommand.Error)
            {
                Error = AttackStats.ErrorMessage(frame);
                return false;
            }

            if (frame.Command == StompCommand.Message && Utf8Parser.TryParse(frame.Body.IsSingleSegment ? frame.Body.FirstSpan : frame.Body.ToArray(), out long seen, out _) && seen == sequence)
            {
                Delivered = true;
                return false;
            }

            return true;
        }
    }

    public string DescribeErrors() =>
        string.Join("; ", Errors.OrderByDescending(e => e.Value).Select(e => string.Create(CultureInfo.InvariantCulture, $"{e.Value}x {e.Key}")));
}
