using System.Diagnostics;
using System.Globalization;
using System.Text;
using Broker.Protocol;

namespace Broker.Benchmarks.Load;

/// <summary>
/// <c>load --url URL ...</c>: N subscribers and P publishers on one destination. Subscribers connect and
/// subscribe (each waits for its RECEIPT) before the first message; each publisher stamps its bodies
/// with a timestamp and a sequence number, so every delivery yields a latency sample and is checked for
/// loss, duplication and order. Unpaced publishers keep at most a window of messages in flight (sent,
/// not yet delivered to every subscriber), so the measured rate is one the broker sustains rather than
/// how fast it can buffer.
/// </summary>
internal static class LoadRun
{
    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            output.WriteLine(LoadOptions.Usage);
            return 0;
        }

        LoadOptions options;
        try
        {
            options = LoadOptions.Parse(args);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or UriFormatException)
        {
            Console.Error.WriteLine($"load: {e.Message}");
            Console.Error.WriteLine(LoadOptions.Usage);
            return 2;
        }

        return options.Idle ? await IdleRun.RunAsync(options, output) : await new Scenario(options, output).RunAsync();
    }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "RunAsync disposes _stop; a scenario runs once.")]
    private sealed class Scenario(LoadOptions options, TextWriter output)
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly LoadOptions _options = options;
        private readonly List<Subscriber> _subscribers = [];
        private readonly List<LoadConnection> _connections = [];
        private readonly SeenSet[] _seen = Enumerable.Range(0, options.Publishers).Select(_ => new SeenSet()).ToArray();
        private long _delivered;
        private long _sent;
        private string? _publisherError;
        private TimeSpan _cpuAtStart;

        private int FanOut => _options.IsQueue ? 1 : _options.Subscribers;

        public async Task<int> RunAsync()
        {
            var window = _options.Window > 0 ? _options.Window : (int)Math.Clamp(64L * 1024 * 1024 / ((long)_options.Size * FanOut), 16, 10_000);
            var pacing = _options.Rate > 0 ? $"paced at {_options.Rate.ToString("N0", CultureInfo.InvariantCulture)} msg/s" : $"unpaced (window {window} messages)";
            var amount = _options.Duration > 0 ? $"for {_options.Duration.ToString(CultureInfo.InvariantCulture)} s" : $"{_options.Messages} messages";
            var publishAt = _options.PublishTarget is { } other ? $" (publishers at {other})" : "";
            output.WriteLine($"load: {_options.Target}{publishAt} {_options.Destination}: {_options.Publishers} publisher(s) -> {_options.Subscribers} subscriber(s) " +
                             $"({(_options.IsQueue ? "competing consumers" : "fan-out")}, ack {_options.Ack}), {_options.Size} B, {pacing}, {amount}");
            try
            {
                try
                {
                    await OpenSubscribersAsync();
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    output.WriteLine($"error: subscribing failed: {e.Message}");
                    output.WriteLine($"result: label={_options.Label ?? "load"} delivered=0 expected=0 lost=0 errors=1");
                    return 1;
                }

                var publishers = new List<(LoadConnection Connection, Task Reader)>();
                for (var p = 0; p < _options.Publishers; p++)
                {
                    var connection = await OpenAsync(_options.PublisherTarget, p, 1024);
                    var reader = new PublisherReader(this);
                    publishers.Add((connection, ReadUntilStoppedAsync(connection, reader)));
                }

                var perPublisher = _options.Duration > 0 ? long.MaxValue : _options.Messages / _options.Publishers;
                var remainder = _options.Duration > 0 ? 0 : _options.Messages % _options.Publishers;
                var start = Stopwatch.GetTimestamp();
                _cpuAtStart = Process.GetCurrentProcess().TotalProcessorTime;
                var sending = publishers.Select((p, i) => PublishAsync(p.Connection, i, perPublisher + (i < remainder ? 1 : 0), window, start)).ToArray();
                await Task.WhenAll(sending);
                var publishedIn = Stopwatch.GetElapsedTime(start);
                await DrainAsync();
                return Report(start, publishedIn);
            }
            finally
            {
                await _stop.CancelAsync();
                await Task.WhenAll(_connections.Select(c => c.DisposeAsync().AsTask()));
                _stop.Dispose();
            }
        }

        private async Task<LoadConnection> OpenAsync(LoadTarget target, int index, int receiveBuffer)
        {
            var connection = await LoadConnection.OpenAsync(target, _options.SourceAddress(index), receiveBuffer, _stop.Token);
            lock (_connections)
            {
                _connections.Add(connection);
            }

            await connection.ConnectStompAsync(_options.VirtualHost, _options.Login, _options.Passcode, _stop.Token);
            return connection;
        }

        private async Task OpenSubscribersAsync()
        {
            using var gate = new SemaphoreSlim(_options.Concurrency);
            var bufferSize = Math.Max(16 * 1024, 2 * (_options.Size + 512));
            var opening = Enumerable.Range(0, _options.Subscribers).Select(async i =>
            {
                await gate.WaitAsync(_stop.Token);
                try
                {
                    var connection = await OpenAsync(_options.Target, _options.Publishers + i, bufferSize);
                    connection.WriteSubscribe("sub-0", _options.Destination, _options.Ack, _options.Prefetch, "subscribed");
                    await connection.FlushAsync(_stop.Token);
                    await connection.ExpectAsync(StompCommand.Receipt, _stop.Token);
                    var subscriber = new Subscriber(this, connection);
                    lock (_subscribers)
                    {
                        _subscribers.Add(subscriber);
                    }

                    subscriber.Loop = ReadUntilStoppedAsync(connection, subscriber);
                }
                finally
                {
                    gate.Release();
                }
            }).ToArray();
            await Task.WhenAll(opening);
        }

        private async Task ReadUntilStoppedAsync(LoadConnection connection, FrameHandler handler)
        {
            try
            {
                if (!await connection.ReadAsync(handler, _stop.Token) && !_stop.IsCancellationRequested)
                {
                    throw new IOException("the server closed the connection");
                }
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                if (handler is Subscriber subscriber)
                {
                    subscriber.Error ??= e.Message;
                }
                else
                {
                    _publisherError ??= e.Message;
                }
            }
        }

        private async Task PublishAsync(LoadConnection connection, int index, long count, int window, long start)
        {
            // The SEND frame, built once; each message copies it and stamps the body in place.
            var template = new System.Buffers.ArrayBufferWriter<byte>();
            var w = new StompFrameWriter(template, StompVersion.V12).Command(StompCommand.Send);
            w.Header("destination"u8, _options.Destination);
            w.Header("content-type"u8, "text/plain");
            var body = new byte[_options.Size];
            body.AsSpan().Fill((byte)'x');
            w.End(body);
            var frame = template.WrittenSpan.ToArray();
            var bodyOffset = frame.Length - 1 - _options.Size;

            var maxBatch = Math.Max(1, 256 * 1024 / frame.Length);
            var perSecond = _options.Rate / _options.Publishers;
            var deadline = _options.Duration > 0 ? start + (long)(_options.Duration * Stopwatch.Frequency) : long.MaxValue;
            long sequence = 0;
            while (sequence < count && _publisherError is null && !_stop.IsCancellationRequested)
            {
                var now = Stopwatch.GetTimestamp();
                if (now >= deadline)
                {
                    break;
                }

                long batch;
                if (perSecond > 0)
                {
                    var due = Math.Min(count, (long)((now - start) * perSecond / Stopwatch.Frequency) + 1);
                    batch = Math.Min(due - sequence, maxBatch);
                }
                else
                {
                    var inFlight = Interlocked.Read(ref _sent) - Interlocked.Read(ref _delivered) / FanOut;
                    batch = Math.Min(Math.Min(window - inFlight, count - sequence), maxBatch);
                }

                if (batch <= 0)
                {
                    await Task.Delay(1);
                    continue;
                }

                var timestamp = Stopwatch.GetTimestamp();
                for (var i = 0; i < batch; i++)
                {
                    var span = connection.Output.GetSpan(frame.Length);
                    frame.CopyTo(span);
                    MessageStamp.Write(span.Slice(bodyOffset), timestamp, index, sequence++);
                    connection.Output.Advance(frame.Length);
                }

                Interlocked.Add(ref _sent, batch);
                await connection.FlushAsync(_stop.Token);
            }
        }

        private async Task DrainAsync()
        {
            var expected = Interlocked.Read(ref _sent) * FanOut;
            var lastProgress = Stopwatch.GetTimestamp();
            var last = -1L;
            while (true)
            {
                var delivered = Interlocked.Read(ref _delivered);
                if (delivered >= expected || _subscribers.All(s => s.Error is not null))
                {
                    return;
                }

                if (delivered != last)
                {
                    last = delivered;
                    lastProgress = Stopwatch.GetTimestamp();
                }
                else if (Stopwatch.GetElapsedTime(lastProgress).TotalSeconds > _options.DrainTimeout)
                {
                    return;
                }

                await Task.Delay(20);
            }
        }

        private int Report(long start, TimeSpan publishedIn)
        {
            var sent = Interlocked.Read(ref _sent);
            var expected = sent * FanOut;
            var histogram = new LatencyHistogram();
            long delivered = 0, duplicates = 0, outOfOrder = 0, unreadable = 0, lastDelivery = start;
            var errors = new List<string>();
            foreach (var s in _subscribers)
            {
                histogram.Add(s.Histogram);
                delivered += s.Delivered;
                duplicates += s.Duplicates;
                outOfOrder += s.OutOfOrder;
                unreadable += s.Unreadable;
                lastDelivery = Math.Max(lastDelivery, s.LastDelivery);
                if (s.Error is not null)
                {
                    errors.Add(s.Error);
                }
            }

            if (_publisherError is not null)
            {
                errors.Add("publisher: " + _publisherError);
            }

            var lost = Math.Max(0, expected - (delivered - duplicates));
            var seconds = Math.Max((lastDelivery - start) / (double)Stopwatch.Frequency, 1e-9);
            var rate = delivered / seconds;
            string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
            string N(double v) => v.ToString("N0", CultureInfo.InvariantCulture);

            output.WriteLine($"published {N(sent)} messages in {F(publishedIn.TotalSeconds)} s; delivered {N(delivered)}/{N(expected)} " +
                             $"({N(lost)} lost, {N(duplicates)} duplicate, {N(outOfOrder)} out of order) in {F(seconds)} s");
            output.WriteLine($"deliveries/s {N(rate)}, messages/s {N(sent / seconds)}; per subscriber {N(_subscribers.Min(s => s.Delivered))} to {N(_subscribers.Max(s => s.Delivered))}");
            // How busy the load tool itself was (1.0 = every core it may use, all the time): near 1, the
            // client and not the broker may be what limits the rate.
            var cpu = (Process.GetCurrentProcess().TotalProcessorTime - _cpuAtStart).TotalSeconds / Math.Max(Stopwatch.GetElapsedTime(start).TotalSeconds, 1e-9) / Environment.ProcessorCount;
            output.WriteLine($"load tool CPU {F(cpu * 100)} % of {Environment.ProcessorCount} core(s)");
            output.WriteLine($"latency ms: p50 {F(histogram.PercentileMs(50))}, p99 {F(histogram.PercentileMs(99))}, " +
                             $"p99.9 {F(histogram.PercentileMs(99.9))}, max {F(histogram.MaxMs)}");
            foreach (var error in errors.Distinct().Take(5))
            {
                output.WriteLine($"error: {error}");
            }

            var result = new StringBuilder("result:");
            result.Append(CultureInfo.InvariantCulture, $" label={_options.Label ?? "load"} delivered={delivered} expected={expected} lost={lost}");
            result.Append(CultureInfo.InvariantCulture, $" duplicates={duplicates} out_of_order={outOfOrder} unreadable={unreadable} errors={errors.Count}");
            result.Append(CultureInfo.InvariantCulture, $" seconds={F(seconds)} deliveries_per_s={Math.Round(rate)} client_cpu={F(cpu)}");
            result.Append(CultureInfo.InvariantCulture, $" p50_ms={F(histogram.PercentileMs(50))} p99_ms={F(histogram.PercentileMs(99))}");
            result.Append(CultureInfo.InvariantCulture, $" p999_ms={F(histogram.PercentileMs(99.9))} max_ms={F(histogram.MaxMs)}");
            output.WriteLine(result.ToString());
            return lost > 0 || duplicates > 0 || outOfOrder > 0 || unreadable > 0 || errors.Count > 0 ? 1 : 0;
        }

        /// <summary>A subscriber's receive loop: latency, order and duplicate checks, acknowledgements.</summary>
        private sealed class Subscriber(Scenario scenario, LoadConnection connection) : FrameHandler
        {
            private static readonly long TicksPerMicrosecond = Math.Max(1, Stopwatch.Frequency / 1_000_000);
            private readonly long[] _next = new long[scenario._options.Publishers];
            private readonly bool _individual = scenario._options.Ack == "client-individual";
            private readonly bool _cumulative = scenario._options.Ack == "client";
            private readonly byte[] _lastAck = new byte[256];
            private int _lastAckLength;
            private int _chunkDeliveries;

            public Task Loop { get; set; } = Task.CompletedTask;

            public LatencyHistogram Histogram { get; } = new();

            public long Delivered { get; private set; }

            public long Duplicates { get; private set; }

            public long OutOfOrder { get; private set; }

            public long Unreadable { get; private set; }

            public long LastDelivery { get; private set; }

            public string? Error { get; set; }

            public override bool OnFrame(StompFrame frame)
            {
                if (frame.Command == StompCommand.Error)
                {
                    Error = "ERROR: " + (frame.GetString("message"u8) ?? Encoding.UTF8.GetString(frame.Body));
                    return false;
                }

                if (frame.Command != StompCommand.Message)
                {
                    return true;
                }

                var now = Stopwatch.GetTimestamp();
                Delivered++;
                _chunkDeliveries++;
                LastDelivery = now;
                Span<byte> stamp = stackalloc byte[MessageStamp.Length];
                var body = frame.Body;
                if (body.Length < MessageStamp.Length)
                {
                    Unreadable++;
                }
                else
                {
                    System.Buffers.BuffersExtensions.CopyTo(body.Slice(0, MessageStamp.Length), stamp);
                    if (!MessageStamp.TryRead(stamp, out var timestamp, out var publisher, out var sequence) || (uint)publisher >= (uint)_next.Length)
                    {
                        Unreadable++;
                    }
                    else
                    {
                        Histogram.Record((now - timestamp) / TicksPerMicrosecond);
                        Check(publisher, sequence);
                    }
                }

                if ((_individual || _cumulative) && frame.TryGetHeader("ack"u8, out var ackId) && ackId.Length <= _lastAck.Length)
                {
                    if (_individual)
                    {
                        WriteAck(ackId);
                    }
                    else
                    {
                        ackId.CopyTo(_lastAck);
                        _lastAckLength = ackId.Length;
                    }
                }

                return true;
            }

            public override ValueTask AfterChunkAsync(LoadConnection c, CancellationToken cancellationToken)
            {
                if (_chunkDeliveries > 0)
                {
                    Interlocked.Add(ref scenario._delivered, _chunkDeliveries);
                    _chunkDeliveries = 0;
                }

                if (_lastAckLength > 0)
                {
                    WriteAck(_lastAck.AsSpan(0, _lastAckLength));
                    _lastAckLength = 0;
                }

                return c.FlushAsync(cancellationToken);
            }

            private void Check(int publisher, long sequence)
            {
                if (scenario._options.IsQueue)
                {
                    if (!scenario._seen[publisher].TryMark(sequence))
                    {
                        Duplicates++;
                    }

                    return;
                }

                var next = _next[publisher];
                if (sequence < next)
                {
                    Duplicates++;
                    return;
                }

                if (sequence > next)
                {
                    OutOfOrder++;
                }

                _next[publisher] = sequence + 1;
            }

            private void WriteAck(ReadOnlySpan<byte> id)
            {
                var w = new StompFrameWriter(connection.Output, StompVersion.V12).Command(StompCommand.Ack);
                w.Header("id"u8, id);
                w.EndWithoutBody();
            }
        }

        /// <summary>Reads what a publisher receives: nothing is expected but an ERROR, which stops the run.</summary>
        private sealed class PublisherReader(Scenario scenario) : FrameHandler
        {
            public override bool OnFrame(StompFrame frame)
            {
                if (frame.Command == StompCommand.Error)
                {
                    scenario._publisherError ??= "ERROR: " + (frame.GetString("message"u8) ?? Encoding.UTF8.GetString(frame.Body));
                    return false;
                }

                return true;
            }
        }
    }

    /// <summary>Which sequence numbers of one publisher were delivered, for competing consumers (thread-safe).</summary>
    private sealed class SeenSet
    {
        private const int PageBits = 21;
        private readonly int[]?[] _pages = new int[1 << 10][];

        public bool TryMark(long sequence)
        {
            var pageIndex = (int)(sequence >> PageBits);
            if ((uint)pageIndex >= (uint)_pages.Length)
            {
                return true;
            }

            var page = Volatile.Read(ref _pages[pageIndex]);
            if (page is null)
            {
                Interlocked.CompareExchange(ref _pages[pageIndex], new int[(1 << PageBits) / 32], null);
                page = _pages[pageIndex]!;
            }

            var bit = (int)(sequence & ((1 << PageBits) - 1));
            var mask = 1 << (bit & 31);
            return (Interlocked.Or(ref page[bit >> 5], mask) & mask) == 0;
        }
    }
}
