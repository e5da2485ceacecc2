using Broker.Tests.Durability;
using Broker.Tests.EndToEnd;
using NUnit.Framework;
using static Broker.Tests.Relay.RelayTesting;

namespace Broker.Tests.Cluster;

/// <summary>
/// The resume benchmark (Broker.Benchmarks 'resume --nodes A,B') run short as its own process against two
/// Broker.Server processes sharing one Redis: what it checks and reports, no timing. With the Redis cluster
/// every round recovers with every message once, in order; without it, a move to the other node cannot
/// recover, and the tool says so and fails.
/// </summary>
[TestFixture]
public sealed class ResumeToolTests
{
    private const string ApiKey = "resume-tool-test-api-key";
    private RedisServer _redis = null!;

    [OneTimeSetUp]
    public async Task StartRedis() => _redis = await RedisServer.GetSharedAsync();

    [Test]
    public async Task On_the_Redis_cluster_every_round_recovers_every_missed_message_once_in_order()
    {
        var (exit, output) = await RunOnTwoNodesAsync(cluster: true, "--subscriptions", "5", "--missed", "20", "--rounds", "3", "--warmup", "0");

        var result = BenchmarksTool.ResultLine(output);
        Assert.That(exit, Is.Zero, output);
        Assert.That(result["rounds"], Is.EqualTo("3"), output);
        Assert.That((result["not_recovered"], result["missing"], result["duplicates"], result["out_of_order"], result["errors"]), Is.EqualTo(("0", "0", "0", "0", "0")), output);
    }

    [Test]
    public async Task Without_the_cluster_a_move_to_the_other_node_is_reported_as_not_recovered()
    {
        var (exit, output) = await RunOnTwoNodesAsync(cluster: false, "--subscriptions", "2", "--missed", "4", "--rounds", "1", "--warmup", "0");

        var result = BenchmarksTool.ResultLine(output);
        Assert.That(exit, Is.EqualTo(1), output);
        Assert.That((result["not_recovered"], result["rounds"]), Is.EqualTo(("1", "0")), output);
    }

    private async Task<(int Exit, string Output)> RunOnTwoNodesAsync(bool cluster, params string[] args)
    {
        var prefix = $"broker-{Unique()}:";
        List<string> server = ["--Broker:Sessions:Store=redis", $"--Broker:Sessions:Redis={_redis.Configuration}", $"--Broker:Sessions:RedisKeyPrefix={prefix}", $"--Broker:Api:Key={ApiKey}"];
        if (cluster)
        {
            server.AddRange(["--Broker:Cluster:Kind=redis", $"--Broker:Cluster:KeyPrefix={prefix}cluster:"]);
        }

        await using var a = await ServerProcess.StartAsync(server);
        await using var b = await ServerProcess.StartAsync(server);
        if (cluster)
        {
            foreach (var node in new[] { a, b })
            {
                await node.WaitForOutputAsync(l => l.Contains("Redis cluster: connected to", StringComparison.Ordinal), 1, "the node connected to Redis");
            }
        }

        return await BenchmarksTool.RunAsync("resume", TimeSpan.FromSeconds(120), ["--nodes", $"{a.WebSocketUri},{b.WebSocketUri}", "--api-key", ApiKey, "--prefix", Unique(), .. args]);
    }
}
