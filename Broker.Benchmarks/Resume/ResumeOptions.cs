using System.Globalization;
using Broker.Benchmarks.Load;

namespace Broker.Benchmarks.Resume;

/// <summary>The command line of <c>resume --nodes ...</c> (<see cref="NodeResumeRun"/>).</summary>
internal sealed class ResumeOptions
{
    public const string Usage = """
        usage: Broker.Benchmarks resume --nodes ws://A/ws,ws://B/ws [options]

        A durable session subscribes SUBSCRIPTIONS topics on node A and drops its connection; a
        publisher on node B sends MISSED messages spread over those topics; the session reconnects
        to B with its session-token. Measured from writing CONNECT: to CONNECTED, and to the last
        replayed message. Checked: resumed:true, recovered:true, every message once, in order per
        topic. Prints p50/p99/max and a final 'result:' line; exits 1 on any failed check.

          --nodes A,B          ws:// or tcp:// URLs: subscribe on the first, publish and resume on the
                               second (one URL: all on that node)
          --subscriptions N    topics the session subscribes to (20)
          --missed N           messages published while it is away (100)
          --rounds N           measured rounds (50), after --warmup N unmeasured ones (5)
          --api-key KEY        Broker:Api:Key of node A: before publishing, wait until A shows the
                               dropped session away (GET /api/sessions) and has written it to the
                               session store (GET /api/stats); without it: wait --settle-ms (250)
          --login L --passcode P   the session's user (guest / guest)
          --label NAME         label of the result line (resume)
          --prefix P           topic name prefix (default: unique per run)
        """;

    public IReadOnlyList<LoadTarget> Nodes { get; private set; } = [];

    public int Subscriptions { get; private set; } = 20;

    public int Missed { get; private set; } = 100;

    public int Rounds { get; private set; } = 50;

    public int Warmup { get; private set; } = 5;

    public string? ApiKey { get; private set; }

    public int SettleMs { get; private set; } = 250;

    public string Login { get; private set; } = "guest";

    public string Passcode { get; private set; } = "guest";

    public string Label { get; private set; } = "resume";

    public string Prefix { get; private set; } = $"resume-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";

    public LoadTarget SubscribeNode => Nodes[0];

    public LoadTarget ResumeNode => Nodes[^1];

    /// <summary>Parses <paramref name="args"/>; throws <see cref="ArgumentException"/> with what is wrong.</summary>
    public static ResumeOptions Parse(string[] args)
    {
        var o = new ResumeOptions();
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Count(int min) => int.TryParse(Next(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min
                ? n
                : throw new ArgumentException($"{args[i - 1]} takes a whole number of at least {min}, not '{args[i]}'");
            switch (args[i])
            {
                case "--nodes":
                    o.Nodes = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(LoadTarget.Parse).ToArray();
                    break;
                case "--subscriptions":
                    o.Subscriptions = Count(1);
                    break;
                case "--missed":
                    o.Missed = Count(1);
                    break;
                case "--rounds":
                    o.Rounds = Count(1);
                    break;
                case "--warmup":
                    o.Warmup = Count(0);
                    break;
                case "--api-key":
                    o.ApiKey = Next();
                    break;
                case "--settle-ms":
                    o.SettleMs = Count(0);
                    break;
                case "--login":
                    o.Login = Next();
                    break;
                case "--passcode":
                    o.Passcode = Next();
                    break;
                case "--label":
                    o.Label = Next();
                    break;
                case "--prefix":
                    o.Prefix = Next();
                    break;
                default:
                    throw new ArgumentException($"unknown argument '{args[i]}'");
            }
        }

        if (o.Nodes.Count == 0)
        {
            throw new ArgumentException("--nodes is required");
        }

        return o;
    }
}
