using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Broker.Tests.Relay;

/// <summary>
/// A real RabbitMQ node of our own (Debian's rabbitmq-server): its own node name, Erlang cookie,
/// config, mnesia and log directories in a temp directory, AMQP on a free 127.0.0.1 port. One node
/// serves the whole run (<see cref="GetSharedAsync"/>; tests isolate by unique queue and topic names);
/// a test that restarts RabbitMQ (<see cref="RestartAsync"/>) starts a node of its own (<see cref="StartAsync"/>).
/// The shared node is killed at the end of the run (<see cref="RabbitMqServerFixture"/>), every node when
/// the process exits. Without
/// rabbitmq-server, tests fail under <c>CI=true</c> and are ignored elsewhere.
/// </summary>
internal sealed partial class RabbitMqServer : IAsyncDisposable
{
    public const string ServerScript = "/usr/lib/rabbitmq/bin/rabbitmq-server";
    public const string CtlScript = "/usr/lib/rabbitmq/bin/rabbitmqctl";

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly SharedInstance<RabbitMqServer> s_shared = new(StartAsync);
    private static int s_instances;

    private readonly StringBuilder _output;
    private Process _process;
    private readonly Dictionary<string, string> _environment;

    private RabbitMqServer(Process process, StringBuilder output, Dictionary<string, string> environment, string directory, string nodeName, int port)
    {
        _process = process;
        _output = output;
        _environment = environment;
        Directory = directory;
        NodeName = nodeName;
        Port = port;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Kill();
    }

    public string Directory { get; }

    public string NodeName { get; }

    public int Port { get; }

    /// <summary>The AMQP URI of this node (the default guest user, allowed from loopback).</summary>
    public string Uri => $"amqp://guest:guest@127.0.0.1:{Port}/";

    public static Task<RabbitMqServer> GetSharedAsync() => s_shared.GetAsync();

    public static Task StopSharedAsync() => s_shared.StopAsync();

    public static async Task<RabbitMqServer> StartAsync()
    {
        RequireRabbitMqServer();
        Exception? last = null;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            // The ports are free now; another process could take one first, hence the retry.
            var port = FreePort();
            var distPort = FreePort();
            var instance = Interlocked.Increment(ref s_instances);
            var node = $"brokertest-{Environment.ProcessId}-{instance}@localhost";
            var directory = Path.Combine(Path.GetTempPath(), $"brokertest-rabbitmq-{Environment.ProcessId}-{instance}");
            var environment = Prepare(directory, node, port, distPort);
            var output = new StringBuilder();
            var process = Launch(directory, environment, output);
            var server = new RabbitMqServer(process, output, environment, directory, node, port);
            try
            {
                await server.WaitAcceptingAsync(StartTimeout);
                return server;
            }
            catch (Exception ex) when (ex is InvalidOperationException or TimeoutException)
            {
                last = new InvalidOperationException($"rabbitmq-server {node} on port {port} did not start: {ex.Message}\n{server.Output}", ex);
                await server.DisposeAsync();
            }
        }

        throw last!;
    }

    /// <summary>Everything the server printed (for failure messages).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Runs <c>rabbitmqctl</c> against this node and returns its output.</summary>
    public async Task<string> CtlAsync(params string[] arguments)
    {
        var info = new ProcessStartInfo(CtlScript)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Directory,
        };
        info.ArgumentList.Add("-n");
        info.ArgumentList.Add(NodeName);
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in _environment)
        {
            info.Environment[key] = value;
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"rabbitmqctl {string.Join(' ', arguments)} exited with {process.ExitCode}: {await stdout}{await stderr}\n{LogTail()}");
        }

        return await stdout;
    }

    /// <summary>
    /// Stops the node (<c>rabbitmqctl stop</c>: the Erlang VM exits) and starts it again as a new process on
    /// the same ports with the same data directory, as an operator restarting RabbitMQ does; returns once it
    /// accepts AMQP connections again (durable queues and their persistent messages are back).
    /// </summary>
    public async Task RestartAsync()
    {
        await CtlAsync("stop");
        using (var exited = new CancellationTokenSource(StartTimeout))
        {
            await _process.WaitForExitAsync(exited.Token);
        }

        var old = _process;
        _process = Launch(Directory, _environment, _output);
        old.Dispose();
        try
        {
            await WaitAcceptingAsync(StartTimeout);
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException)
        {
            throw new InvalidOperationException($"rabbitmq-server {NodeName} did not restart: {ex.Message}\n{Output}\n{LogTail()}", ex);
        }
    }

    /// <summary>Closes every client connection, as an operator or a network failure would.</summary>
    public Task CloseAllConnectionsAsync() => CtlAsync("close_all_connections", "closed by a test");

    /// <summary>Stops the RabbitMQ application (the node stays up, its listeners close): RabbitMQ is unreachable.</summary>
    public Task StopAppAsync() => CtlAsync("stop_app");

    /// <summary>Starts the application again (durable queues and persistent messages come back) and waits for AMQP.</summary>
    public async Task StartAppAsync()
    {
        // On a loaded machine start_app has been seen to give up once (exit 69, "rabbit application not
        // running") and succeed when asked again; an operator would retry too.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await CtlAsync("start_app");
                break;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                await Task.Delay(TimeSpan.FromSeconds(2));
            }
        }

        await WaitAcceptingAsync(StartTimeout);
    }

    /// <summary>The end of the node's log files (for failure messages: the node says there why it would not start).</summary>
    public string LogTail(int chars = 8192)
    {
        var text = new StringBuilder();
        try
        {
            foreach (var file in System.IO.Directory.EnumerateFiles(Path.Combine(Directory, "log"), "*.log"))
            {
                using var reader = new StreamReader(new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
                reader.BaseStream.Seek(Math.Max(0, reader.BaseStream.Length - chars), SeekOrigin.Begin);
                text.Append("--- ").Append(Path.GetFileName(file)).Append(" (end) ---\n").Append(reader.ReadToEnd()).Append('\n');
            }
        }
        catch (IOException ex)
        {
            text.Append("(log unreadable: ").Append(ex.Message).Append(')');
        }

        return text.ToString();
    }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private async Task WaitAcceptingAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"rabbitmq-server exited with {_process.ExitCode}");
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"nothing accepted connections on port {Port} within {timeout}");
                }

                await Task.Delay(100);
            }
        }
    }

    private static Process Launch(string directory, Dictionary<string, string> environment, StringBuilder output)
    {
        var info = new ProcessStartInfo(ServerScript)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    // The node's files, all in its own directory: cookie (HOME), config, plugins, mnesia and logs.
    private static Dictionary<string, string> Prepare(string directory, string node, int port, int distPort)
    {
        if (System.IO.Directory.Exists(directory))
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }

        var home = System.IO.Directory.CreateDirectory(Path.Combine(directory, "home")).FullName;
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "mnesia"));
        System.IO.Directory.CreateDirectory(Path.Combine(directory, "log"));
        var cookie = Path.Combine(home, ".erlang.cookie");
        File.WriteAllText(cookie, Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(20)));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(cookie, UnixFileMode.UserRead); // Erlang refuses a cookie others can read
        }
        var config = Path.Combine(directory, "rabbitmq.conf");
        File.WriteAllText(config, string.Join('\n',
            $"listeners.tcp.1 = 127.0.0.1:{port}",
            "loopback_users = none",
            "disk_free_limit.absolute = 1MB",
            "log.console = false",
            "log.file.level = info",
            ""));
        var plugins = Path.Combine(directory, "enabled_plugins");
        File.WriteAllText(plugins, "[].\n");
        var envConf = Path.Combine(directory, "rabbitmq-env.conf");
        File.WriteAllText(envConf, string.Empty);
        return new Dictionary<string, string>
        {
            ["HOME"] = home,
            ["RABBITMQ_NODENAME"] = node,
            ["RABBITMQ_NODE_IP_ADDRESS"] = "127.0.0.1",
            ["RABBITMQ_NODE_PORT"] = port.ToString(CultureInfo.InvariantCulture),
            ["RABBITMQ_DIST_PORT"] = distPort.ToString(CultureInfo.InvariantCulture),
            ["RABBITMQ_CONFIG_FILE"] = config,
            ["RABBITMQ_ENABLED_PLUGINS_FILE"] = plugins,
            ["RABBITMQ_CONF_ENV_FILE"] = envConf,
            ["RABBITMQ_MNESIA_BASE"] = Path.Combine(directory, "mnesia"),
            ["RABBITMQ_LOG_BASE"] = Path.Combine(directory, "log"),
            ["RABBITMQ_PID_FILE"] = Path.Combine(directory, "rabbitmq.pid"),
            ["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = "-kernel inet_dist_use_interface {127,0,0,1}",
            ["ERL_EPMD_ADDRESS"] = "127.0.0.1",
            // Crash dumps stay with the node (the working directory is the node's directory too, for MnesiaCore.*).
            ["ERL_CRASH_DUMP"] = Path.Combine(directory, "log", "erl_crash.dump"),
        };
    }

    private static void Append(StringBuilder output, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            if (output.Length < 64 * 1024)
            {
                output.AppendLine(line);
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Implemented where a test framework decides what a missing rabbitmq-server means (fail under CI, else ignore).</summary>
    static partial void RequireRabbitMqServer();
}
