using System.Diagnostics;
using NUnit.Framework;

namespace Broker.Tests;

/// <summary>Runs the Broker.Benchmarks executable (built beside the tests) as its own process, as a user runs it.</summary>
internal static class BenchmarksTool
{
    /// <summary>Runs <c>Broker.Benchmarks MODE ARGS</c>; its exit code and everything it printed. Killed after <paramref name="timeout"/>.</summary>
    public static async Task<(int Exit, string Output)> RunAsync(string mode, TimeSpan timeout, params string[] args)
    {
        var testDir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        var configuration = testDir.Parent!.Name; // …/Broker.Tests/bin/<Configuration>/net10.0
        var toolDir = Path.Combine(testDir.Parent!.Parent!.Parent!.Parent!.FullName, "Broker.Benchmarks", "bin", configuration, "net10.0");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(toolDir, "Broker.Benchmarks.dll"));
        info.ArgumentList.Add(mode);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>The key=value pairs of the last <c>result:</c> line of <paramref name="output"/> (asserted to be there).</summary>
    public static Dictionary<string, string> ResultLine(string output)
    {
        var line = output.Split('\n').LastOrDefault(l => l.StartsWith("result:", StringComparison.Ordinal));
        Assert.That(line, Is.Not.Null, output);
        return line!["result:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(kv => kv.Split('=', 2))
            .ToDictionary(kv => kv[0], kv => kv.Length > 1 ? kv[1].TrimEnd('\r') : "");
    }
}
