using BenchmarkDotNet.Running;
using Broker.Benchmarks.Codec;
using Broker.Benchmarks.Durability;
using Broker.Benchmarks.Load;
using Broker.Benchmarks.Routing;

// dotnet run -c Release --project Broker.Benchmarks -- <mode> [arguments]
switch (args.Length > 0 ? args[0] : null)
{
    case "codec":
        // The rest goes to BenchmarkDotNet: --filter '*Reader*', --job short, --list flat, ...
        BenchmarkSwitcher.FromTypes([typeof(ReaderBenchmarks), typeof(WriterBenchmarks)]).Run(args[1..], CodecConfig.Create());
        return 0;

    case "stores":
        // Session store SaveAsync / FindByTokenHashAsync (SQLite temp file, private redis-server).
        BenchmarkSwitcher.FromTypes([typeof(StoreBenchmarks)]).Run(args[1..], StoreBenchmarks.Config());
        return 0;

    case "routing":
        // Wildcard topic matching, before and after issue 11 (old backtracking scan, linear matcher, trie).
        BenchmarkSwitcher.FromTypes([typeof(TopicMatchBenchmarks)]).Run(args[1..]);
        return 0;

    case "resume" when args.Contains("--nodes"):
        // A durable session moving from node A to node B; see ResumeOptions.Usage.
        return await Broker.Benchmarks.Resume.NodeResumeRun.RunAsync(args[1..], Console.Out);

    case "resume":
        return await ResumeLatency.RunAsync(args[1..]);

    case "durability-overhead":
        return await DurabilityOverhead.RunAsync(args[1..]);

    case "chaos":
        // Nodes SIGKILLed and connections cut under durable subscribers; see ChaosRun.Usage.
        return await Broker.Benchmarks.Chaos.ChaosRun.RunAsync(args[1..], Console.Out);

    case "attack":
        // Issue 11's hostile clients against an ordinary one; see AttackOptions.Usage.
        return await Broker.Benchmarks.Attack.AttackRun.RunAsync(args[1..], Console.Out);

    case "load":
        // Drives any STOMP-over-WebSocket or TCP URL; see LoadOptions.Usage.
        return await LoadRun.RunAsync(args[1..], Console.Out);

    default:
        Console.Error.WriteLine("""
            usage: Broker.Benchmarks <mode> [arguments]

            modes:
              codec [BenchmarkDotNet arguments]   STOMP frame reader and writer micro-benchmarks
                                                  e.g. codec --filter '*' --job short
              stores [BenchmarkDotNet arguments]  session store SaveAsync / FindByTokenHashAsync
                                                  (SQLite temp file, private redis-server)
              routing [BenchmarkDotNet arguments] wildcard topic matching: old scan vs linear matcher
                                                  vs trie, 1,000 patterns and a hostile one
              resume [--store sqlite|redis|memory|all] [--iterations N] [--warmup N]
                                                  resume latency percentiles (CONNECT with a token
                                                  to CONNECTED, and to the first live MESSAGE)
              resume --nodes A,B [--missed N] ...  a durable session moving from node A to node B:
                                                  to CONNECTED and to the last missed MESSAGE
              durability-overhead [--messages N] [--subscribers N] [--runs N] [--store S]
                                                  topic fan-out deliveries/s with durable sessions
                                                  off vs on (default: SQLite store)
              load --url URL [options]            N subscribers / P publishers against any STOMP URL
                                                  (ws:// or tcp://): deliveries/s, latency percentiles
              chaos [--nodes N] [--relay URI] ...  nodes SIGKILLed and connections cut under durable
                                                  subscribers: gaps, duplicates, false recovered:true
              attack NAME --url URL [--duration S] [--server-pid PID]
                                                  a hostile client (issue 11) vs an ordinary client's
                                                  round trips, server memory ('attack --help')
              load idle --url URL --connections N memory per idle subscribed connection
                                                  ('load --help' lists every option)
            """);
        return 1;
}
