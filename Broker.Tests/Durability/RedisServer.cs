using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Broker.Tests.Durability;

/// <summary>
/// A real <c>redis-server</c> of our own on a free 127.0.0.1 port (no persistence), started on first
/// use and killed at the end of the run (<see cref="RedisServerFixture"/>) or when the process exits.
/// Without redis-server on PATH, tests fail under <c>CI=true</c> and are ignored elsewhere.
/// </summary>
internal sealed partial class RedisServer : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(15);
    private static readonly SharedInstance<RedisServer> s_shared = new(() => StartAsync());

    private readonly Process _process;

    private RedisServer(Process process, int port)
    {
        _process = process;
        Port = port;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Kill();
    }

    public int Port { get; }

    /// <summary>A StackExchange.Redis configuration string for this server.</summary>
    public string Configuration => $"127.0.0.1:{Port}";

    /// <summary>The server the whole run shares (tests isolate by key prefix).</summary>
    public static Task<RedisServer> GetSharedAsync() => s_shared.GetAsync();

    public static Task StopSharedAsync() => s_shared.StopAsync();

    /// <summary>
    /// A server of the caller's own (for tests that stop it); on <paramref name="port"/> to start one again where a
    /// stopped one was, with more redis-server <paramref name="arguments"/> (such as <c>--dir</c>, to load a saved snapshot).
    /// </summary>
    public static async Task<RedisServer> StartAsync(int? port = null, IReadOnlyList<string>? arguments = null)
    {
        RequireRedisServer();
        Exception? last = null;
        for (var attempt = 0; attempt < 3; attempt++)
        {
            // The port is free now; another process could take it before redis binds, hence the retries.
            var chosen = port ?? FreePort();
            var process = Process.Start(new ProcessStartInfo("redis-server")
            {
                ArgumentList = { "--port", chosen.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no" },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            }.WithArguments(arguments))!;
            var output = new StringBuilder();
            var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            process.OutputDataReceived += (_, e) =>
            {
                lock (output)
                {
                    output.AppendLine(e.Data);
                }

                if (e.Data?.Contains("Ready to accept connections", StringComparison.Ordinal) == true)
                {
                    ready.TrySetResult();
                }
            };
            process.EnableRaisingEvents = true;
            process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException($"redis-server exited with {process.ExitCode}"));
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            try
            {
                await ready.Task.WaitAsync(StartTimeout);
                var server = new RedisServer(process, chosen);
                await server.PingAsync();
                return server;
            }
            catch (Exception ex) when (ex is InvalidOperationException or TimeoutException or IOException or SocketException)
            {
                lock (output)
                {
                    last = new InvalidOperationException($"redis-server on port {chosen} did not start: {ex.Message}\n{output}", ex);
                }

                KillProcess(process);
            }
        }

        throw last!;
    }

    /// <summary>Sends PING over a plain socket and expects PONG.</summary>
    public async Task PingAsync()
    {
        using var client = new TcpClient();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await client.ConnectAsync(IPAddress.Loopback, Port, timeout.Token);
        var stream = client.GetStream();
        await stream.WriteAsync("PING\r\n"u8.ToArray(), timeout.Token);
        var buffer = new byte[64];
        var read = await stream.ReadAsync(buffer, timeout.Token);
        var reply = Encoding.ASCII.GetString(buffer, 0, read);
        if (!reply.StartsWith("+PONG", StringComparison.Ordinal))
        {
            throw new IOException($"redis-server on port {Port} answered PING with '{reply.Trim()}'");
        }
    }

    public void Kill() => KillProcess(_process);

    public async ValueTask DisposeAsync()
    {
        Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    private static void KillProcess(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Implemented where a test framework decides what a missing redis-server means (fail under CI, else ignore).</summary>
    static partial void RequireRedisServer();
}

internal static class RedisServerStartInfo
{
    public static ProcessStartInfo WithArguments(this ProcessStartInfo info, IReadOnlyList<string>? arguments)
    {
        foreach (var argument in arguments ?? [])
        {
            info.ArgumentList.Add(argument);
        }

        return info;
    }
}
