using System.Diagnostics;
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

        var result = output.Split('\n').Last(l => l.StartsWith("result:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(kv => kv.Split('=')).ToDictionary(kv => kv[0], kv => kv[1]);
        Assert.That(exit, Is.Zero, output);
        Assert.That((result["gaps"], result["lies"], result["reordered"], result["incomplete"], result["errors"]), Is.EqualTo(("0", "0", "0", "0", "0")), output);
        Assert.That(int.Parse(result["kills"], System.Globalization.CultureInfo.InvariantCulture), Is.GreaterThan(0), "a node was SIGKILLed");
        Assert.That(int.Parse(result["resumes"], System.Globalization.CultureInfo.InvariantCulture), Is.GreaterThan(0), output);
    }

    private static async Task<(int Exit, string Output)> RunAsync(params string[] args)
    {
        var testDir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        var configuration = testDir.Parent!.Name; // …/Broker.Tests/bin/<Configuration>/net10.0
        var toolDir = Path.Combine(testDir.Parent!.Parent!.Parent!.Parent!.FullName, "Broker.Benchmarks", "bin", configuration, "net10.0");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(toolDir, "Broker.Benchmarks.dll"));
        info.ArgumentList.Add("chaos");
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(180));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await stdout + await stderr);
    }
}
