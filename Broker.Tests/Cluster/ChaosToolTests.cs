using NUnit.Framework;

namespace Broker.Tests.Cluster;

/// <summary>
/// The chaos tool (Broker.Benchmarks 'chaos') run short as its own process: three Broker.Server nodes on the
/// Redis cluster, connections cut and a node SIGKILLed under durable subscribers. What it reports is checked,
/// no timing: no gap, no false recovered:true, no reordering, everything delivered.
/// </summary>
[TestFixture]
public sealed class ChaosToolTests
{
    [Test]
    public async Task A_short_chaos_run_on_the_Redis_cluster_loses_nothing_and_never_claims_a_false_recovery()
    {
        var (exit, output) = await RunAsync("--nodes", "3", "--clients", "6", "--topics", "2", "--rate", "50", "--duration", "8", "--drop-every", "0.5", "--kill-every", "4", "--seed", "1");

        var result = BenchmarksTool.ResultLine(output);
        Assert.That(exit, Is.Zero, output);
        Assert.That((result["gaps"], result["lies"], result["reordered"], result["incomplete"], result["errors"]), Is.EqualTo(("0", "0", "0", "0", "0")), output);
        Assert.That(int.Parse(result["kills"], System.Globalization.CultureInfo.InvariantCulture), Is.GreaterThan(0), "a node was SIGKILLed");
        Assert.That(int.Parse(result["resumes"], System.Globalization.CultureInfo.InvariantCulture), Is.GreaterThan(0), output);
    }

    private static Task<(int Exit, string Output)> RunAsync(params string[] args) => BenchmarksTool.RunAsync("chaos", TimeSpan.FromSeconds(180), args);
}
