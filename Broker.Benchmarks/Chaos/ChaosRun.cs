using System.Buffers;
using System.Globalization;
using Broker.Benchmarks.Durability;
using Broker.Protocol;

namespace Broker.Benchmarks.Chaos;

/// <summary>
/// <c>chaos</c>: several Broker.Server nodes (the Redis cluster shape, or the relay shape with <c>--relay</c>),
/// sequenced publishers on a few topics (connected to node 0, which is never killed), and durable subscribers
/// with <c>client-individual</c> acks on every topic. For a bounded time, random subscriber connections are cut
/// and nodes other than node 0 are SIGKILLed and started again; a cut subscriber reconnects to a random live
/// node with its session token. Per subscription it reports gaps (a message skipped within a connection),
/// lies (a message skipped right after a resume that said <c>recovered:true</c>), duplicates and reorderings.
/// Exit code 1 on any gap, lie or reordering. Duplicates are reported, not failed: an unacknowledged message
/// comes again by design, and after a SIGKILL a client-ack subscription resumes from its position as last stored.
/// </summary>
internal static class ChaosRun
{
    public const string Usage = """
        usage: Broker.Benchmarks chaos [options]

          --nodes N          Broker.Server nodes (default 3)
          --clients N        durable subscribers (default 20)
          --topics N         topics, one sequenced publisher each (default 4)
          --rate R           messages/s per topic (default 100)
          --duration S       seconds of chaos (default 30)
          --drop-every S     cut a random subscriber's connection every S seconds (default 1)
          --kill-every S     SIGKILL a random node (not node 0) every S seconds, started again 1 s later (default 10; 0 = never)
          --ack MODE         client-individual (default) | auto
          --relay URI        the relay shape: nodes use RabbitMQ at URI instead of the Redis cluster
          --seed N           random seed (default: time)

        Starts a private redis-server (sessions, and the cluster unless --relay). Prints one line per
        subscriber and a final 'result:' line.
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        ChaosOptions options;
        try
        {
            options = ChaosOptions.Parse(args);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException)
        {
            output.WriteLine(ex.Message);
            output.WriteLine(Usage);
            return 2;
        }

        if (options.Help)
        {
            output.WriteLine(Usage);
            return 0;
        }

        await using var redis = await Broker.Tests.Durability.RedisServer.StartAsync();
        var prefix = $"chaos-{Guid.NewGuid():N}"[..16] + ":";
        var shape = options.Relay is null
            ? new[] { "--Broker:Cluster:Kind=redis", $"--Broker:Cluster:KeyPrefix={prefix}cluster:", "--Broker:Cluster:QueueRedeliveryTimeout=00:00:02" }
            : new[] { "--Broker:Relay:Kind=rabbitmq", $"--Broker:Relay:RabbitMq:Uri={options.Relay}", $"--Broker:Relay:RabbitMq:QueuePrefix={prefix}" };
        string[] arguments =
        [
            "--Broker:Sessions:Store=redis", $"--Broker:Sessions:Redis={redis.Configuration}", $"--Broker:Sessions:RedisKeyPrefix={prefix}",
            $"--Broker:HistorySize={Math.Max(1000, (int)(options.Rate * (options.Duration + 60)))}", "--Logging:LogLevel:Default=Warning", "--Logging:LogLevel:Broker.Server=Information", .. shape,
        ];
        var nodes = Enumerable.Range(0, options.Nodes).Select(i => new ChaosNode(i, arguments)).ToList();
        using var stop = new CancellationTokenSource();
        try
        {
            await Task.WhenAll(nodes.Select(n => n.StartAsync(stop.Token)));
            output.WriteLine($"chaos: {options.Nodes} nodes ({(options.Relay is null ? "Redis cluster" : "RabbitMQ relay")}), {options.Clients} subscribers ({options.Ack}), " +
                             $"{options.Topics} topics at {options.Rate} msg/s, {options.Duration} s, drop every {options.DropEvery} s, kill every {options.KillEvery} s, seed {options.Seed}");
            return await new Run(options, nodes, prefix, output).ExecuteAsync(stop);
        }
        catch (Exception ex) when (ex is IOException or TimeoutException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            output.WriteLine($"error: the run could not go on: {ex.Message}");
            output.WriteLine("result: errors=1");
            return 1;
        }
        finally
        {
            await stop.CancelAsync();
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
        }
    }

    private sealed class Run(ChaosOptions options, List<ChaosNode> nodes, string prefix, TextWriter output)
    {
        private readonly Random _random = new(options.Seed);
        private readonly long[] _published = new long[options.Topics];
        private string? _publisherError;

        public async Task<int> ExecuteAsync(CancellationTokenSource stop)
        {
            var subscribers = new List<Subscriber>();
            for (var i = 0; i < options.Clients; i++)
            {
                var subscriber = new Subscriber(i, options, prefix);
                await subscriber.ConnectAsync(PickNode(), null, stop.Token);
                subscribers.Add(subscriber);
            }

            var loops = subscribers.Select(s => s.RunAsync(PickNode, stop.Token)).ToList();
            using var publishing = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
            var publishers = Enumerable.Range(0, options.Topics).Select(t => PublishAsync(t, publishing.Token)).ToList();

            var started = DateTime.UtcNow;
            var nextKill = options.KillEvery > 0 ? started.AddSeconds(options.KillEvery) : DateTime.MaxValue;
            var kills = 0;
            var drops = 0;
            while (DateTime.UtcNow - started < TimeSpan.FromSeconds(options.Duration) && _publisherError is null)
            {
                await Task.Delay(TimeSpan.FromSeconds(options.DropEvery), stop.Token);
                subscribers[_random.Next(subscribers.Count)].Cut();
                drops++;
                if (DateTime.UtcNow >= nextKill && nodes.Count > 1)
                {
                    var victim = nodes[1 + _random.Next(nodes.Count - 1)];
                    await victim.KillAsync();
                    kills++;
                    await Task.Delay(1000, stop.Token);
                    await victim.StartAsync(stop.Token);
                    nextKill = DateTime.UtcNow.AddSeconds(options.KillEvery);
                }
            }

            await publishing.CancelAsync();
            await Task.WhenAll(publishers);
            var last = (long[])_published.Clone();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (subscribers.Any(s => !s.HasAll(last)) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100, stop.Token);
            }

            await stop.CancelAsync();
            await Task.WhenAll(loops);
            return Report(subscribers, last, drops, kills);
        }

        private ChaosNode PickNode()
        {
            var up = nodes.Where(n => n.IsUp).ToList();
            return up[_random.Next(up.Count)];
        }

        // A sequenced publisher on node 0 (never killed): SENDs with a receipt every 20, so one is in RabbitMQ or
        // Redis when counted; a refused one fails the run.
        private async Task PublishAsync(int topic, CancellationToken cancellationToken)
        {
            try
            {
                var (client, _) = await RawStompClient.ConnectAsync(nodes[0].TcpPort, cancellationToken);
                await using var _1 = client;
                var interval = TimeSpan.FromSeconds(1 / options.Rate);
                var next = DateTime.UtcNow;
                var destination = $"/topic/{prefix}{topic}";
                var frame = new ArrayBufferWriter<byte>();
                for (long seq = 1; !cancellationToken.IsCancellationRequested; seq++)
                {
                    frame.ResetWrittenCount();
                    var writer = new StompFrameWriter(frame, StompVersion.V12).Command(StompCommand.Send);
                    writer.Header("destination"u8, destination);
                    var receipt = seq % 20 == 0 ? $"p{seq}" : null;
                    if (receipt is not null)
                    {
                        writer.Header("receipt"u8, receipt);
                    }

                    writer.End(System.Text.Encoding.ASCII.GetBytes(seq.ToString(CultureInfo.InvariantCulture)));
                    await client.WriteRawAsync(frame.WrittenMemory, CancellationToken.None);
                    if (receipt is not null)
                    {
                        await client.ExpectReceiptAsync(receipt, CancellationToken.None);
                    }

                    Volatile.Write(ref _published[topic], seq);
                    next += interval;
                    if (next > DateTime.UtcNow)
                    {
                        await Task.Delay(next - DateTime.UtcNow, cancellationToken);
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception ex)
            {
                _publisherError = $"publisher {topic}: {ex.Message}";
            }
        }

        private int Report(List<Subscriber> subscribers, long[] last, int drops, int kills)
        {
            foreach (var subscriber in subscribers)
            {
                output.WriteLine(subscriber.Report(last));
            }

            var gaps = subscribers.Sum(s => s.Gaps);
            var lies = subscribers.Sum(s => s.Lies);
            var reordered = subscribers.Sum(s => s.Reordered);
            var incomplete = subscribers.Count(s => !s.HasAll(last));
            if (_publisherError is not null)
            {
                output.WriteLine("error: " + _publisherError);
            }

            output.WriteLine($"result: published={last.Sum()} delivered={subscribers.Sum(s => s.Received)} gaps={gaps} lies={lies} duplicates={subscribers.Sum(s => s.Duplicates)} " +
                             $"reordered={reordered} incomplete={incomplete} resumes={subscribers.Sum(s => s.Resumes)} recovered={subscribers.Sum(s => s.RecoveredResumes)} " +
                             $"fresh_sessions={subscribers.Sum(s => s.FreshSessions)} drops={drops} kills={kills} errors={(_publisherError is null ? 0 : 1)}");
            return gaps + lies + reordered + incomplete > 0 || _publisherError is not null ? 1 : 0;
        }
    }

    /// <summary>One durable subscriber to every topic; checks each topic's sequence across all its connections.</summary>
    private sealed class Subscriber(int index, ChaosOptions options, string prefix)
    {
        private readonly HashSet<long>[] _seen = Enumerable.Range(0, options.Topics).Select(_ => new HashSet<long>()).ToArray();
        private readonly long[] _next = new long[options.Topics]; // 0: nothing yet
        private readonly bool[] _resumedSince = new bool[options.Topics];
        private readonly bool[] _mayGap = new bool[options.Topics];
        private RawStompClient? _client;
        private string? _token;
        private string? _session;

        public int Gaps { get; private set; }

        /// <summary>The first few lies and gaps, for the report.</summary>
        public List<string> Details { get; } = [];

        public int Lies { get; private set; }

        public int Duplicates { get; private set; }

        public int Reordered { get; private set; }

        public long Received { get; private set; }

        public int Resumes { get; private set; }

        public int RecoveredResumes { get; private set; }

        public int FreshSessions { get; private set; }

        public bool HasAll(long[] last) => Enumerable.Range(0, last.Length).All(t => Volatile.Read(ref _next[t]) > last[t] || last[t] == 0);

        /// <summary>Cuts the connection (a reset, as a lost network looks); the loop reconnects.</summary>
        public void Cut() => _client?.Abort();

        public async Task ConnectAsync(ChaosNode node, string? token, CancellationToken cancellationToken)
        {
            var (client, connected) = await RawStompClient.ConnectAsync(node.TcpPort, cancellationToken, token);
            _client = client;
            var resumed = connected.Header("resumed") == "true";
            if (token is not null)
            {
                Resumes++;
                var recovered = connected.Header("recovered") == "true";
                RecoveredResumes += recovered ? 1 : 0;
                Array.Fill(_resumedSince, recovered);
                Array.Fill(_mayGap, !recovered);
            }

            if (!resumed)
            {
                // A fresh session (first connect, or the token was not found): subscribe; anything may be skipped.
                FreshSessions += token is null ? 0 : 1;
                _token = connected.Header("session-token");
                _session = connected.Header("session");
                Array.Fill(_mayGap, true);
                var frames = new ArrayBufferWriter<byte>();
                for (var t = 0; t < options.Topics; t++)
                {
                    var w = new StompFrameWriter(frames, StompVersion.V12).Command(StompCommand.Subscribe);
                    w.Header("id"u8, $"t{t}");
                    w.Header("destination"u8, $"/topic/{prefix}{t}");
                    w.Header("ack"u8, options.Ack);
                    w.Header("receipt"u8, $"s{t}");
                    w.EndWithoutBody();
                }

                await client.WriteRawAsync(frames.WrittenMemory, cancellationToken);
                for (var t = 0; t < options.Topics; t++)
                {
                    await ReceiveUntilReceiptAsync(client, $"s{t}", cancellationToken);
                }
            }
        }

        public async Task RunAsync(Func<ChaosNode> pickNode, CancellationToken cancellationToken)
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    while (true)
                    {
                        var client = _client!;
                        if (Handle(await client.ReceiveAsync(cancellationToken)) is { } ack)
                        {
                            await client.WriteRawAsync(ack, cancellationToken);
                        }
                    }
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception)
                {
                    // Cut, or its node died: back to a random live node with the token.
                    if (_client is not null)
                    {
                        await _client.DisposeAsync();
                    }

                    while (!cancellationToken.IsCancellationRequested)
                    {
                        try
                        {
                            await ConnectAsync(pickNode(), _token, cancellationToken);
                            break;
                        }
                        catch (Exception)
                        {
                            if (cancellationToken.IsCancellationRequested)
                            {
                                return;
                            }

                            await Task.Delay(100, CancellationToken.None);
                        }
                    }
                }
            }
        }

        private async Task ReceiveUntilReceiptAsync(RawStompClient client, string receipt, CancellationToken cancellationToken)
        {
            while (true)
            {
                var frame = await client.ReceiveAsync(cancellationToken);
                if (frame.Command == StompCommand.Receipt && frame.Header("receipt-id") == receipt)
                {
                    return;
                }

                if (Handle(frame) is { } ack)
                {
                    await client.WriteRawAsync(ack, cancellationToken);
                }
            }
        }

        // Checks a frame; returns the ACK to send for a MESSAGE that has an ack header.
        private byte[]? Handle(RawStompClient.Received frame)
        {
            if (frame.Command == StompCommand.Error)
            {
                throw new IOException("ERROR: " + frame.Header("message"));
            }

            if (frame.Command != StompCommand.Message)
            {
                return null;
            }

            var topic = int.Parse(frame.Header("subscription")!.AsSpan(1), CultureInfo.InvariantCulture);
            var seq = long.Parse(frame.Body, CultureInfo.InvariantCulture);
            Received++;
            if (!_seen[topic].Add(seq))
            {
                Duplicates++;
            }
            else if (_next[topic] != 0 && seq < _next[topic])
            {
                Reordered++;
            }
            else if (_next[topic] != 0 && seq > _next[topic] && !_mayGap[topic])
            {
                if (_resumedSince[topic])
                {
                    Lies++;
                    if (Details.Count < 5)
                    {
                        Details.Add($"topic {topic}: resumed (recovered:true) session {_session} and got {seq}, expected {_next[topic]}");
                    }
                }
                else
                {
                    Gaps++;
                    if (Details.Count < 5)
                    {
                        Details.Add($"topic {topic}: got {seq}, expected {_next[topic]} (within a connection)");
                    }
                }
            }

            if (seq >= _next[topic])
            {
                Volatile.Write(ref _next[topic], seq + 1);
            }

            _mayGap[topic] = false;
            _resumedSince[topic] = false;
            if (frame.Header("ack") is not { } ack)
            {
                return null;
            }

            var bytes = new ArrayBufferWriter<byte>();
            var writer = new StompFrameWriter(bytes, StompVersion.V12).Command(StompCommand.Ack);
            writer.Header("id"u8, ack);
            writer.EndWithoutBody();
            return bytes.WrittenSpan.ToArray();
        }

        public string Report(long[] last) =>
            $"subscriber {index}: {Received} messages, {Resumes} resumes ({RecoveredResumes} recovered, {FreshSessions} fresh), gaps {Gaps}, lies {Lies}, " +
            $"duplicates {Duplicates}, reordered {Reordered}{(HasAll(last) ? "" : ", INCOMPLETE")}{string.Concat(Details.Select(d => "\n    " + d))}";
    }
}

internal sealed record ChaosOptions(int Nodes, int Clients, int Topics, double Rate, double Duration, double DropEvery, double KillEvery, string Ack, string? Relay, int Seed, bool Help)
{
    public static ChaosOptions Parse(string[] args)
    {
        int nodes = 3, clients = 20, topics = 4, seed = Environment.TickCount;
        double rate = 100, duration = 30, dropEvery = 1, killEvery = 10;
        string ack = "client-individual";
        string? relay = null;
        var help = false;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--nodes": nodes = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--clients": clients = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--topics": topics = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--rate": rate = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--duration": duration = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--drop-every": dropEvery = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--kill-every": killEvery = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--ack": ack = Next(); break;
                case "--relay": relay = Next(); break;
                case "--seed": seed = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--help" or "-h": help = true; break;
                default: throw new ArgumentException($"unknown argument '{args[i]}'");
            }
        }

        if (nodes < 1 || clients < 1 || topics < 1 || topics > 9 || rate <= 0 || duration <= 0 || dropEvery <= 0 || killEvery < 0 || ack is not ("auto" or "client-individual"))
        {
            throw new ArgumentException("--nodes, --clients, --rate, --duration, --drop-every must be positive, --topics 1..9, --kill-every at least 0, --ack auto or client-individual");
        }

        return new ChaosOptions(nodes, clients, topics, rate, duration, dropEvery, killEvery, ack, relay, seed, help);
    }
}
