using System.Globalization;
using Broker.Benchmarks.Load;

namespace Broker.Benchmarks.Attack;

/// <summary>What <c>attack NAME --url URL ...</c> runs: one hostile client pattern from issue 11, bounded in time (and count).</summary>
internal sealed record AttackOptions
{
    public const string Usage = """
        usage: Broker.Benchmarks attack <name> --url ws://HOST:PORT/ws|tcp://HOST:PORT [options]

        attacks (issue 11), each against an ordinary client doing a SEND->MESSAGE round trip every ~10 ms:
          wildcard      5 clients: SUBSCRIBE /topic/#.#.#.#.#.#.#.z, then SENDs to 120-word topics
          new-topics    1 KB SENDs, each to a new /topic/ name nobody subscribes to
          queue-flood   1 MiB SENDs, each to a new /queue/ name nobody consumes
          receipts      BEGIN/ABORT pairs with 8 KB receipt headers from a client that never reads
          connect-body  200 connections, each sending a 2 MiB CONNECT body before authenticating
                        (reconnecting 100 ms after being refused)
          none          no attacker: the ordinary client alone (the baseline)

        options:
          --duration S        how long the attack runs (default 60)
          --count N           stop the attack after N attacker operations as well (default: no bound)
          --server-pid PID    sample the server's VmRSS (/proc/PID/status)
          --metrics URL       the server's Prometheus endpoint (default for ws:// URLs: http://HOST:PORT/metrics)
          --drain S           how long the ordinary client's last round trip may take after the attack (default 35)
          --interval MS       the ordinary client's pace (default 10)
          --login L --passcode P   default guest / guest
          --attacker-source A the attackers' source address (default 127.0.0.2 against a loopback target, so
                              that a per-address limit tells them from the ordinary client on 127.0.0.1;
                              'none' = whatever the system picks, the ordinary client's address)
        """;

    public required string Name { get; init; }

    public required LoadTarget Target { get; init; }

    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(60);

    public long Count { get; init; } = long.MaxValue;

    public int? ServerPid { get; init; }

    public Uri? MetricsUri { get; init; }

    public TimeSpan Drain { get; init; } = TimeSpan.FromSeconds(35);

    public TimeSpan Interval { get; init; } = TimeSpan.FromMilliseconds(10);

    public string Login { get; init; } = "guest";

    public string Passcode { get; init; } = "guest";

    /// <summary>The address the attackers' connections are bound to; null = the system's choice (the ordinary client's).</summary>
    public System.Net.IPAddress? AttackerSource { get; init; }

    public static readonly string[] Names = ["wildcard", "new-topics", "queue-flood", "receipts", "connect-body", "none"];

    public static AttackOptions Parse(string[] args)
    {
        if (args.Length == 0 || args[0].StartsWith('-'))
        {
            throw new ArgumentException("the attack's name comes first");
        }

        var name = args[0];
        if (!Names.Contains(name))
        {
            throw new ArgumentException($"unknown attack '{name}' (one of {string.Join(", ", Names)})");
        }

        string? url = null, metrics = null, login = "guest", passcode = "guest", source = null;
        double duration = 60, drain = 35, interval = 10;
        long count = long.MaxValue;
        int? pid = null;
        for (var i = 1; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--url": url = Next(); break;
                case "--duration": duration = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--count": count = long.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--server-pid": pid = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--metrics": metrics = Next(); break;
                case "--drain": drain = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--interval": interval = double.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--login": login = Next(); break;
                case "--passcode": passcode = Next(); break;
                case "--attacker-source": source = Next(); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }

        var target = LoadTarget.Parse(url ?? throw new ArgumentException("--url is required"));
        return new AttackOptions
        {
            Name = name,
            Target = target,
            Duration = TimeSpan.FromSeconds(duration),
            Count = count > 0 ? count : throw new ArgumentException("--count must be positive"),
            ServerPid = pid,
            MetricsUri = metrics is not null ? new Uri(metrics) : target.WebSocket ? new Uri($"http://{target.Host}:{target.Port}/metrics") : null,
            Drain = TimeSpan.FromSeconds(drain),
            Interval = TimeSpan.FromMilliseconds(interval),
            Login = login,
            Passcode = passcode,
            AttackerSource = source switch
            {
                "none" => null,
                null => IsLoopback(target.Host) ? System.Net.IPAddress.Parse("127.0.0.2") : null,
                _ => System.Net.IPAddress.TryParse(source, out var a) ? a : throw new ArgumentException($"--attacker-source '{source}' is not an IP address"),
            },
        };
    }

    private static bool IsLoopback(string host) =>
        (System.Net.IPAddress.TryParse(host, out var a) && a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && System.Net.IPAddress.IsLoopback(a));
}
