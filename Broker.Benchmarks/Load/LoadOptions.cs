using System.Globalization;
using System.Net;

namespace Broker.Benchmarks.Load;

/// <summary>The load tool's command line (see <see cref="Usage"/>).</summary>
internal sealed class LoadOptions
{
    public const string Usage = """
        usage: Broker.Benchmarks load --url URL [options]
               Broker.Benchmarks load idle --url URL --connections N [options]

          --url URL              ws://host:port/path or tcp://host:port (required)
          --publish-url URL      publishers connect here instead of --url (another node of a cluster)
          --destination D        default /topic/load (idle: /topic/idle); /queue/... = competing consumers
          --subscribers N        default 10
          --publishers P         default 1
          --size BYTES           message body size, at least 32 (default 128)
          --messages M           messages in total across publishers (default 100000 unless --duration)
          --duration SECONDS     publish for this long instead of a count
          --rate R               paced: R messages/s in total across publishers (default: unpaced)
          --window W             unpaced: most messages in flight (published, not yet delivered to
                                 every subscriber); default min(10000, 64 MiB / (size x fan-out))
          --ack MODE             auto | client | client-individual (default auto)
          --prefetch N           prefetch-count header on SUBSCRIBE (default: none)
          --login L --passcode P default guest / guest
          --vhost H              the CONNECT host header (default /)
          --drain-timeout S      give up waiting for deliveries after S seconds without progress (default 10)
          --label TEXT           a name for the result line
          --source-addresses K   bind connections to 127.0.0.1 .. 127.0.0.K in turn (more than 28k
                                 connections to one port need K > 1)
        idle mode:
          --connections N        subscribed connections to open and hold
          --server-pid PID       the server process whose resident memory growth is reported
          --settle S             seconds to wait before reading memory (default 5)
          --concurrency C        connections being opened at once (default 64)
          --heartbeat CX,CY      the CONNECT heart-beat header, in ms (default 0,0: none); e.g.
                                 10000,10000 (stomp.js's default); the tool answers with one EOL
                                 per connection per negotiated interval, all from one timer
          --cpu-window S         after --settle, the server's CPU use (utime+stime from
                                 /proc/PID/stat) over S seconds, minus its own idle use over
                                 --baseline S seconds read before connecting (default 0: off)
          --baseline S           default: the --cpu-window

        Prints a summary and a final 'result:' line of key=value pairs; exits 1 on loss, a duplicate,
        an out-of-order delivery or an ERROR frame.
        """;

    public required LoadTarget Target { get; init; }

    /// <summary>Where publishers connect: <c>--publish-url</c>, else <see cref="Target"/>.</summary>
    public LoadTarget? PublishTarget { get; init; }

    public LoadTarget PublisherTarget => PublishTarget ?? Target;

    public bool Idle { get; init; }

    public string Destination { get; init; } = "/topic/load";

    public int Subscribers { get; init; } = 10;

    public int Publishers { get; init; } = 1;

    public int Size { get; init; } = 128;

    public long Messages { get; init; }

    public double Duration { get; init; }

    public double Rate { get; init; }

    public int Window { get; init; }

    public string Ack { get; init; } = "auto";

    public int Prefetch { get; init; }

    public string Login { get; init; } = "guest";

    public string Passcode { get; init; } = "guest";

    public string VirtualHost { get; init; } = "/";

    public double DrainTimeout { get; init; } = 10;

    public string? Label { get; init; }

    public int SourceAddresses { get; init; } = 1;

    public int Connections { get; init; }

    public int? ServerPid { get; init; }

    public double Settle { get; init; } = 5;

    public int Concurrency { get; init; } = 64;

    public Heartbeat Heartbeat { get; init; }

    public double CpuWindow { get; init; }

    public double Baseline { get; init; }

    /// <summary>Competing consumers (each message once in total) rather than fan-out (once per subscriber).</summary>
    public bool IsQueue => Destination.StartsWith("/queue/", StringComparison.Ordinal) || Destination.StartsWith("/amq/queue/", StringComparison.Ordinal);

    public IPAddress? SourceAddress(int index) =>
        SourceAddresses <= 1 ? null : new IPAddress(new byte[] { 127, 0, 0, (byte)(1 + index % SourceAddresses) });

    public static LoadOptions Parse(string[] args)
    {
        var idle = args.Length > 0 && args[0] == "idle";
        string? url = null;
        string? publishUrl = null;
        string? destination = null;
        int subscribers = 10, publishers = 1, size = 128, window = 0, prefetch = 0, sources = 1, connections = 0, concurrency = 64;
        long messages = 0;
        double duration = 0, rate = 0, drain = 10, settle = 5, cpuWindow = 0;
        double? baseline = null;
        var heartbeat = default(Heartbeat);
        string ack = "auto", login = "guest", passcode = "guest", vhost = "/";
        string? label = null;
        int? pid = null;
        for (var i = idle ? 1 : 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int NextInt() => int.Parse(Next(), CultureInfo.InvariantCulture);
            double NextDouble() => double.Parse(Next(), CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--url": url = Next(); break;
                case "--publish-url": publishUrl = Next(); break;
                case "--destination": destination = Next(); break;
                case "--subscribers": subscribers = NextInt(); break;
                case "--publishers": publishers = NextInt(); break;
                case "--size": size = NextInt(); break;
                case "--messages": messages = long.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--duration": duration = NextDouble(); break;
                case "--rate": rate = NextDouble(); break;
                case "--window": window = NextInt(); break;
                case "--ack": ack = Next(); break;
                case "--prefetch": prefetch = NextInt(); break;
                case "--login": login = Next(); break;
                case "--passcode": passcode = Next(); break;
                case "--vhost": vhost = Next(); break;
                case "--drain-timeout": drain = NextDouble(); break;
                case "--label": label = Next(); break;
                case "--source-addresses": sources = NextInt(); break;
                case "--connections": connections = NextInt(); break;
                case "--server-pid": pid = NextInt(); break;
                case "--settle": settle = NextDouble(); break;
                case "--concurrency": concurrency = NextInt(); break;
                case "--heartbeat": heartbeat = Heartbeat.Parse(Next()); break;
                case "--cpu-window": cpuWindow = NextDouble(); break;
                case "--baseline": baseline = NextDouble(); break;
                default: throw new ArgumentException($"unknown argument '{args[i]}'");
            }
        }

        if (url is null)
        {
            throw new ArgumentException("--url is required");
        }

        if (ack is not ("auto" or "client" or "client-individual"))
        {
            throw new ArgumentException("--ack must be auto, client or client-individual");
        }

        if (size < 32)
        {
            throw new ArgumentException("--size must be at least 32 (the body carries a timestamp and a sequence number)");
        }

        if (idle && connections <= 0)
        {
            throw new ArgumentException("idle mode needs --connections N");
        }

        if ((heartbeat != default || cpuWindow > 0) && !idle)
        {
            throw new ArgumentException("--heartbeat and --cpu-window are options of idle mode");
        }

        if (cpuWindow > 0 && pid is null)
        {
            throw new ArgumentException("--cpu-window needs --server-pid");
        }

        if (subscribers < 1 || publishers < 1 || sources < 1 || sources > 254 || concurrency < 1)
        {
            throw new ArgumentException("--subscribers, --publishers, --concurrency and --source-addresses (at most 254) must be positive");
        }

        if (messages == 0 && duration <= 0)
        {
            messages = 100_000;
        }

        return new LoadOptions
        {
            Target = LoadTarget.Parse(url),
            PublishTarget = publishUrl is null ? null : LoadTarget.Parse(publishUrl),
            Idle = idle,
            Destination = destination ?? (idle ? "/topic/idle" : "/topic/load"),
            Subscribers = subscribers,
            Publishers = publishers,
            Size = size,
            Messages = messages,
            Duration = duration,
            Rate = rate,
            Window = window,
            Ack = ack,
            Prefetch = prefetch,
            Login = login,
            Passcode = passcode,
            VirtualHost = vhost,
            DrainTimeout = drain,
            Label = label,
            SourceAddresses = sources,
            Connections = connections,
            ServerPid = pid,
            Settle = settle,
            Concurrency = concurrency,
            Heartbeat = heartbeat,
            CpuWindow = cpuWindow,
            Baseline = baseline ?? cpuWindow,
        };
    }
}
