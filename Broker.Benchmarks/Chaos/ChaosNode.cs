using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Broker.Benchmarks.Chaos;

/// <summary>A Broker.Server process of the chaos run, found next to this tool's build; SIGKILLed and started again.</summary>
internal sealed partial class ChaosNode : IAsyncDisposable
{
    private static readonly string[] s_listen = ["--Broker:Server:ListenAddress=127.0.0.1", "--Broker:Server:HttpPort=0", "--Broker:Server:TcpPort=0"];
    private readonly string[] _arguments;
    private Process? _process;

    public ChaosNode(int index, string[] arguments)
    {
        Index = index;
        _arguments = arguments;
    }

    public int Index { get; }

    public int TcpPort { get; private set; }

    public bool IsUp => _process is { HasExited: false } && TcpPort > 0;

    public int Starts { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var dll = ServerDll();
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        info.ArgumentList.Add(dll);
        foreach (var argument in s_listen.Concat(_arguments))
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["Logging__Console__FormatterName"] = "simple";
        var listening = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = Process.Start(info)!;
        void OnLine(object? sender, DataReceivedEventArgs e)
        {
            if (e.Data is not null && Environment.GetEnvironmentVariable("CHAOS_LOGS") is { } logs)
            {
                lock (s_listen)
                {
                    File.AppendAllText(Path.Combine(logs, $"node-{Index}.log"), e.Data + "\n");
                }
            }

            if (e.Data is not null && ListeningLine().Match(e.Data) is { Success: true } match)
            {
                listening.TrySetResult(int.Parse(match.Groups["tcp"].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        process.OutputDataReceived += OnLine;
        process.ErrorDataReceived += OnLine;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        TcpPort = await listening.Task.WaitAsync(TimeSpan.FromSeconds(60), cancellationToken);
        Starts++;
    }

    /// <summary>SIGKILL: the node dies with no chance to save anything.</summary>
    public async Task KillAsync()
    {
        TcpPort = 0;
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process?.Dispose();
    }

    // Broker.Server/bin/<configuration>/net10.0/Broker.Server.dll, beside Broker.Benchmarks/bin/<configuration>/net10.0.
    private static string ServerDll()
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = here.Parent!.Name;
        var root = here.Parent!.Parent!.Parent!.Parent!.FullName;
        var dll = Path.Combine(root, "Broker.Server", "bin", configuration, "net10.0", "Broker.Server.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"build Broker.Server first (-c {configuration}): {dll} is missing");
    }

    [GeneratedRegex(@"Broker listening: ws://\S+ tcp://[^:\s]+:(?<tcp>\d+)")]
    private static partial Regex ListeningLine();
}
