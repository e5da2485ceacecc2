using System.Diagnostics;
using NUnit.Framework;

namespace Broker.Tests.Load;

/// <summary>Runs Broker.Benchmarks (the build next to this test assembly's) as its own process and reads its <c>result:</c> line.</summary>
internal static class BenchmarkTool
{
    /// <summary>Runs the tool with <paramref name="args"/> (the mode first); its exit code and stdout + stderr.</summary>
    public static async Task<(int Exit, string Output)> RunAsync(params string[] args)
    {
        var testDir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        var configuration = testDir.Parent!.Name; // …/Broker.Tests/bin/<Configuration>/net10.0
        var toolDir = Path.Combine(testDir.Parent!.Parent!.Parent!.Parent!.FullName, "Broker.Benchmarks", "bin", configuration, "net10.0");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(toolDir, "Broker.Benchmarks.dll"));
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
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

    /// <summary>The last <c>result: k=v ...</c> line of <paramref name="output"/>, as a dictionary.</summary>
    public static Dictionary<string, string> ResultLine(string output)
    {
        var line = output.Split('\n').LastOrDefault(l => l.StartsWith("result:", StringComparison.Ordinal));
        Assert.That(line, Is.Not.Null, output);
        return line!["result:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(kv => kv.Split('=', 2))
            .ToDictionary(kv => kv[0], kv => kv.Length > 1 ? kv[1] : "");
    }
}
