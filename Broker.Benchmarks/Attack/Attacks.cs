using System.Buffers;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Broker.Benchmarks.Load;
using Broker.Protocol;

namespace Broker.Benchmarks.Attack;

/// <summary>
/// The hostile clients of issue 11. Each runs until its token is cancelled or the attackers did <c>--count</c>
/// operations, reconnecting whenever the broker refuses or closes it; what the broker answers goes into
/// <see cref="AttackStats"/>.
/// </summary>
internal static class Attacks
{
    private const string ErrorPrefix = "ERROR from the server: ";

    public static Task RunAsync(AttackOptions options, AttackStats stats, CancellationToken cancellationToken) => options.Name switch
    {
        "wildcard" => Task.WhenAll(Enumerable.Range(0, 5).Select(_ => Reconnecting(stats, TimeSpan.Zero, t => WildcardAsync(options, stats, t), cancellationToken))),
        "new-topics" => Reconnecting(stats, TimeSpan.Zero, t => FloodAsync(options, stats, "/topic/attack-new.", 1024, 64, t), cancellationToken),
        "queue-flood" => Reconnecting(stats, TimeSpan.Zero, t => FloodAsync(options, stats, "/queue/attack-flood.", 1024 * 1024, 1, t), cancellationToken),
        "receipts" => Reconnecting(stats, TimeSpan.Zero, t => ReceiptsAsync(options, stats, t), cancellationToken),
        "connect-body" => Task.WhenAll(Enumerable.Range(0, 200).Select(_ => Reconnecting(stats, TimeSpan.FromMilliseconds(100), t => ConnectBodyAsync(options, stats, t), cancellationToken))),
        _ => Task.Delay(Timeout.Infinite, cancellationToken).ContinueWith(static _ => { }, TaskScheduler.Default),
    };

    private static bool Over(AttackStats stats, CancellationToken cancellationToken) => cancellationToken.IsCancellationRequested || stats.CountReached;

    // Runs one connection's session after another until the attack is over, pausing between them.
    private static async Task Reconnecting(AttackStats stats, TimeSpan pause, Func<CancellationToken, Task> session, CancellationToken cancellationToken)
    {
        while (!Over(stats, cancellationToken))
        {
            try
            {
                await session(cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (InvalidOperationException e) when (e.Message.StartsWith(ErrorPrefix, StringComparison.Ordinal))
            {
                stats.Error(e.Message[ErrorPrefix.Length..]); // refused at CONNECT
            }
            catch (Exception e) when (e is IOException or SocketException or WebSocketException or InvalidOperationException or OperationCanceledException)
            {
                stats.Failure(e);
            }

            if (pause > TimeSpan.Zero && !Over(stats, cancellationToken))
            {
                try
                {
                    await Task.Delay(pause, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }

    private static async Task<LoadConnection> ConnectAsync(AttackOptions options, AttackStats stats, CancellationToken cancellationToken)
    {
        var connection = await LoadConnection.OpenAsync(options.Target, options.AttackerSource, 64 * 1024, cancellationToken);
        stats.Connected();
        try
        {
            await connection.ConnectStompAsync("/", options.Login, options.Passcode, cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    // Reads up to the next RECEIPT or ERROR; false when it was an ERROR or the connection ended.
    private static async Task<bool> ReplyAsync(LoadConnection connection, AttackStats stats, CancellationToken cancellationToken)
    {
        var replies = new AttackReplies(stats, stopAtReply: true);
        return await connection.ReadAsync(replies, cancellationToken) && !replies.GotError;
    }

    // (a) SUBSCRIBE /topic/#.#.#.#.#.#.#.z, then SENDs to 120-word topics that match it, each with a receipt awaited.
    private static async Task WildcardAsync(AttackOptions options, AttackStats stats, CancellationToken cancellationToken)
    {
        await using var connection = await ConnectAsync(options, stats, cancellationToken);
        connection.WriteSubscribe("0", "/topic/#.#.#.#.#.#.#.z", "auto", 0, "subscribed");
        await connection.FlushAsync(cancellationToken);
        if (!await ReplyAsync(connection, stats, cancellationToken))
        {
            return;
        }

        var topic = "/topic/" + string.Join('.', Enumerable.Range(0, 119).Select(i => "w" + (i % 10))) + ".z";
        var body = new byte[16];
        while (!Over(stats, cancellationToken))
        {
            var w = new StompFrameWriter(connection.Output, StompVersion.V12).Command(StompCommand.Send);
            w.Header("destination"u8, topic);
            w.Header("receipt"u8, "sent");
            w.End(body);
            await connection.FlushAsync(cancellationToken);
            stats.Done(1);
            if (!await ReplyAsync(connection, stats, cancellationToken))
            {
                return;
            }
        }
    }

    // (b), (c) SENDs of `size` bytes, each to a new destination under `prefix`, in batches whose last SEND has a receipt awaited.
    private static async Task FloodAsync(AttackOptions options, AttackStats stats, string prefix, int size, int batch, CancellationToken cancellationToken)
    {
        await using var connection = await ConnectAsync(options, stats, cancellationToken);
        var body = new byte[size];
        Array.Fill(body, (byte)'x');
        var run = Guid.NewGuid().ToString("N")[..8];
        while (!Over(stats, cancellationToken))
        {
            for (var i = 0; i < batch; i++)
            {
                var w = new StompFrameWriter(connection.Output, StompVersion.V12).Command(StompCommand.Send);
                w.Header("destination"u8, $"{prefix}{run}.{stats.Ops + i}");
                if (i == batch - 1)
                {
                    w.Header("receipt"u8, "sent");
                }

                w.End(body);
            }

            await connection.FlushAsync(cancellationToken);
            stats.Done(batch);
            if (!await ReplyAsync(connection, stats, cancellationToken))
            {
                return;
            }
        }
    }

    // (d) BEGIN/ABORT pairs with 8 KB receipt headers, never reading; when the connection breaks, what it was sent is read.
    private static async Task ReceiptsAsync(AttackOptions options, AttackStats stats, CancellationToken cancellationToken)
    {
        await using var connection = await ConnectAsync(options, stats, cancellationToken);
        var receipt = new string('r', 8000); // the header line stays under max-header-line-length (8 KiB)
        var transaction = 0L;
        try
        {
            while (!Over(stats, cancellationToken))
            {
                for (var i = 0; i < 16; i++)
                {
                    var id = "tx" + transaction++;
                    var w = new StompFrameWriter(connection.Output, StompVersion.V12).Command(StompCommand.Begin);
                    w.Header("transaction"u8, id);
                    w.Header("receipt"u8, receipt);
                    w.EndWithoutBody();
                    w = new StompFrameWriter(connection.Output, StompVersion.V12).Command(StompCommand.Abort);
                    w.Header("transaction"u8, id);
                    w.Header("receipt"u8, receipt);
                    w.EndWithoutBody();
                }

                await connection.FlushAsync(cancellationToken);
                stats.Done(16);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or WebSocketException)
        {
            stats.Failure(e);
            await DrainAsync(connection, stats);
        }
    }

    // (e) CONNECT with a 2 MiB body, written 64 KiB at a time while its replies are read.
    private static async Task ConnectBodyAsync(AttackOptions options, AttackStats stats, CancellationToken cancellationToken)
    {
        const int BodySize = 2 * 1024 * 1024;
        await using var connection = await LoadConnection.OpenAsync(options.Target, options.AttackerSource, 4096, cancellationToken);
        stats.Connected();
        var replies = new AttackReplies(stats, stopAtReply: true);
        var reader = connection.ReadAsync(replies, cancellationToken);
        try
        {
            var w = new StompFrameWriter(connection.Output, StompVersion.V12).Command(StompCommand.Connect);
            w.Header("accept-version"u8, "1.2");
            w.Header("host"u8, "/");
            w.Header("login"u8, options.Login);
            w.Header("passcode"u8, options.Passcode);
            w.Header("content-length"u8, BodySize);
            w.Raw("\n"u8);
            await connection.FlushAsync(cancellationToken);
            stats.Done(1);
            for (var sent = 0; sent < BodySize && !reader.IsCompleted && !cancellationToken.IsCancellationRequested; sent += Chunk.Length)
            {
                connection.Output.Write(Chunk);
                await connection.FlushAsync(cancellationToken);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or WebSocketException)
        {
            // Refused: the server closed the connection under the body.
        }

        try
        {
            await reader.WaitAsync(TimeSpan.FromSeconds(2), cancellationToken);
        }
        catch (Exception e) when (e is IOException or SocketException or WebSocketException or TimeoutException)
        {
            if (!replies.GotError)
            {
                stats.Failure(e);
            }
        }
    }

    private static readonly byte[] Chunk = Encoding.ASCII.GetBytes(new string('b', 64 * 1024));

    // Reads what the broker sent a client that did not read (RECEIPTs, an ERROR) until the end or 2 s of it.
    private static async Task DrainAsync(LoadConnection connection, AttackStats stats)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await connection.ReadAsync(new AttackReplies(stats, stopAtReply: false), timeout.Token);
        }
        catch (Exception e) when (e is IOException or SocketException or WebSocketException or OperationCanceledException)
        {
            // Reset under us: whatever was still in flight is gone.
        }
    }
}
