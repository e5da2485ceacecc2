using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using NUnit.Framework;

namespace Broker.Tests.Interop;

/// <summary>What one run of an external client script produced.</summary>
internal sealed class ExternalClientResult
{
    public required string Command { get; init; }

    public required int? ExitCode { get; init; }

    public required bool TimedOut { get; init; }

    public required string StandardOutput { get; init; }

    public required string StandardError { get; init; }

    /// <summary>The last JSON object line on stdout, if there was one.</summary>
    public JsonElement? Json { get; init; }

    public string? JsonError { get; init; }

    /// <summary>The script reported <c>"ok": true</c> and exited 0.</summary>
    public bool Ok =>
        !TimedOut
        && ExitCode == 0
        && Json is { ValueKind: JsonValueKind.Object } json
        && json.TryGetProperty("ok", out var ok)
        && ok.ValueKind == JsonValueKind.True;

    /// <summary>The script's own error text, when it reported one.</summary>
    public string? Error =>
        Json is { ValueKind: JsonValueKind.Object } json && json.TryGetProperty("error", out var error)
            ? error.ToString()
            : null;

    public string Describe()
    {
        var text = new StringBuilder();
        text.Append("command: ").AppendLine(Command);
        text.Append("exit code: ").AppendLine(TimedOut ? "none (killed after timeout)" : ExitCode?.ToString() ?? "none");
        if (Error is { } error)
        {
            text.Append("error: ").AppendLine(error);
        }
        else if (JsonError is { } jsonError)
        {
            text.Append("no result JSON: ").AppendLine(jsonError);
        }

        text.AppendLine("--- stdout ---").AppendLine(Truncate(StandardOutput));
        text.AppendLine("--- stderr ---").AppendLine(Truncate(StandardError));
        return text.ToString();
    }

    private static string Truncate(string s, int max = 12_000) =>
        s.Length <= max ? s : string.Concat(s.AsSpan(0, max / 4), "\n… (cut) …\n", s.AsSpan(s.Length - (max * 3 / 4)));
}

/// <summary>
/// Runs the third-party STOMP client scripts kept under Broker.Tests/Interop as child processes:
/// a timeout that kills the whole process tree, stdout and stderr captured, and the one JSON
/// result line parsed.
/// </summary>
internal static class ExternalClient
{
    public const string DebianPython = "/usr/bin/python3";

    private static readonly Lazy<string> RepoRootLazy = new(FindRepoRoot);

    /// <summary>The directory holding Broker.sln, found by walking up from the test output.</summary>
    public static string RepoRoot => RepoRootLazy.Value;

    public static string InteropDirectory => Path.Combine(RepoRoot, "Broker.Tests", "Interop");

    public static async Task<ExternalClientResult> RunAsync(
        string fileName,
        IReadOnlyList<string> arguments,
        string workingDirectory,
        TimeSpan timeout)
    {
        var command = string.Join(' ', new[] { fileName }.Concat(arguments));
        var startInfo = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = new Process { StartInfo = startInfo };
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            return new ExternalClientResult
            {
                Command = command,
                ExitCode = null,
                TimedOut = false,
                StandardOutput = string.Empty,
                StandardError = $"could not start {fileName}: {e.Message}",
                JsonError = "the process did not start",
            };
        }

        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();

        var timedOut = false;
        using (var cts = new CancellationTokenSource(timeout))
        {
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                timedOut = true;
                try
                {
                    process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                    // It exited between the timeout and the kill.
                }

                await process.WaitForExitAsync();
            }
        }

        var output = await stdout;
        var error = await stderr;
        var (json, jsonError) = ParseResultLine(output);
        return new ExternalClientResult
        {
            Command = command,
            ExitCode = timedOut ? null : process.ExitCode,
            TimedOut = timedOut,
            StandardOutput = output,
            StandardError = timedOut ? $"{error}\n(killed: no exit within {timeout.TotalSeconds:0} s)" : error,
            Json = json,
            JsonError = jsonError,
        };
    }

    /// <summary>
    /// A prerequisite of an interop fixture is missing: under CI (<c>CI=true</c>) that is a
    /// failure, anywhere else the tests are ignored with the reason.
    /// </summary>
    public static void RequirePrerequisite(bool available, string reason)
    {
        if (available)
        {
            return;
        }

        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Fail($"Interop prerequisite missing under CI: {reason}");
        }

        Assert.Ignore($"Interop prerequisite missing: {reason}");
    }

    /// <summary>Whether an executable file of that name is on PATH.</summary>
    public static bool IsOnPath(string executable)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        return path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, executable)));
    }

    private static (JsonElement? Json, string? Error) ParseResultLine(string stdout)
    {
        var line = stdout
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .LastOrDefault(l => l.StartsWith('{'));
        if (line is null)
        {
            return (null, "stdout has no JSON line");
        }

        try
        {
            using var document = JsonDocument.Parse(line);
            return (document.RootElement.Clone(), null);
        }
        catch (JsonException e)
        {
            return (null, $"the last JSON-looking line does not parse: {e.Message}");
        }
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Broker.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException(
            $"No directory containing Broker.sln above {TestContext.CurrentContext.TestDirectory}");
    }
}
