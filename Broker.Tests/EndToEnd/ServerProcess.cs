using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Broker.Tests.EndToEnd;

/// <summary>The Broker.Server executable as a child process, configured like a user configures it.</summary>
internal sealed partial class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _output = [];

    private ServerProcess(Process process) => _process = process;

    public Uri WebSocketUri { get; private set; } = null!;

    public int TcpPort { get; private set; }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return string.Join('\n', _output);
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>The server's HTTP base address (the WebSocket endpoint's host and port).</summary>
    public Uri HttpUri => new($"http://{WebSocketUri.Authority}/");

    /// <summary>Runs the server with <paramref name="args"/> (after the defaults of <see cref="StartAsync"/>) expecting it to exit by itself: its exit code, standard output and standard error.</summary>
    public static async Task<(int ExitCode, string Output, string Error)> RunToExitAsync(IEnumerable<string> args, TimeSpan timeout)
    {
        var info = StartInfo(args);
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"the server did not exit within {timeout}:\n{await output}\n{await error}");
        }

        return (process.ExitCode, await output, await error);
    }

    /// <summary>Starts the server on 127.0.0.1 with OS-picked ports plus <paramref name="args"/>; waits until it listens.</summary>
    public static async Task<ServerProcess> StartAsync(IEnumerable<string>? args = null, IDictionary<string, string>? environment = null)
    {
        var info = StartInfo(args);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        var server = new ServerProcess(Process.Start(info)!);
        var listening = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnLine(object? sender, DataReceivedEventArgs e)
        {
            if (e.Data is null)
            {
                return;
            }

            lock (server._output)
            {
                server._output.Add(e.Data);
            }

            if (ListeningLine().Match(e.Data) is { Success: true } match)
            {
                listening.TrySetResult(match);
            }
        }

        server._process.OutputDataReceived += OnLine;
        server._process.ErrorDataReceived += OnLine;
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();

        var done = await Task.WhenAny(listening.Task, server._process.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(30)));
        if (done != listening.Task)
        {
            await server.DisposeAsync();
            throw new InvalidOperationException("the server did not start:\n" + server.Output);
        }

        var m = listening.Task.Result;
        server.WebSocketUri = new Uri($"{m.Groups["ws"].Value}://{m.Groups["http"].Value}{m.Groups["path"].Value}");
        server.TcpPort = int.Parse(m.Groups["tcp"].Value, System.Globalization.CultureInfo.InvariantCulture);
        return server;
    }

    /// <summary>Waits until the server has printed at least <paramref name="count"/> lines matching <paramref name="line"/>.</summary>
    public async Task WaitForOutputAsync(Func<string, bool> line, int count, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            lock (_output)
            {
                if (_output.Count(line) >= count)
                {
                    return;
                }
            }

            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{what}: not seen in the server's output\n{Output}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Sends SIGTERM, as a service manager does, and waits for the exit.</summary>
    public async Task<bool> TerminateAsync(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        await Task.WhenAny(_process.WaitForExitAsync(), Task.Delay(timeout));
        return _process.HasExited;
    }

    /// <summary>SIGKILL: the node dies with no chance to save anything.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    private static ProcessStartInfo StartInfo(IEnumerable<string>? args)
    {
        var testDir = new DirectoryInfo(NUnit.Framework.TestContext.CurrentContext.TestDirectory);
        var configuration = testDir.Parent!.Name; // …/Broker.Tests/bin/<Configuration>/net10.0
        var serverDir = Path.Combine(testDir.Parent!.Parent!.Parent!.Parent!.FullName, "Broker.Server", "bin", configuration, "net10.0");
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = serverDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(serverDir, "Broker.Server.dll"));
        foreach (var arg in new[] { "--Broker:Server:ListenAddress=127.0.0.1", "--Broker:Server:HttpPort=0", "--Broker:Server:TcpPort=0" }.Concat(args ?? []))
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["Logging__Console__FormatterName"] = "simple";
        return info;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await KillAsync();
        _process.Dispose();
    }

    private bool _disposed;

    [GeneratedRegex(@"Broker listening: (?<ws>wss?)://(?<http>[^/\s]+)(?<path>/\S*) tcp(?:\+tls)?://\S+:(?<tcp>\d+)")]
    private static partial Regex ListeningLine();
}
