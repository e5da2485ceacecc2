using System.Diagnostics;
using Broker.Protocol;
using Broker.Security;
using Broker.Tests.EndToEnd;
using NUnit.Framework;

namespace Broker.Tests.Security;

/// <summary>The executable's hash-passcode command, and a hashed user and rules configured as a user configures them.</summary>
[TestFixture]
public sealed class ExecutableSecurityTests
{
    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(string? input, params string[] args)
    {
        var testDir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        var serverDir = Path.Combine(testDir.Parent!.Parent!.Parent!.Parent!.FullName, "Broker.Server", "bin", testDir.Parent!.Name, "net10.0");
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = serverDir,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(serverDir, "Broker.Server.dll"));
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        if (input is not null)
        {
            await process.StandardInput.WriteLineAsync(input);
        }

        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, (await output).Trim(), await error);
    }

    [Test]
    public async Task Hash_passcode_prints_a_hash_of_the_passcode_read_from_standard_input()
    {
        var (code, hash, error) = await RunAsync("from stdin, with spaces ", "hash-passcode", "--iterations", "2000");
        Assert.That(code, Is.Zero, error);
        Assert.That(hash, Does.StartWith("pbkdf2-sha256$2000$"));
        Assert.That(PasscodeHasher.Verify("from stdin, with spaces ", hash), Is.True, "the whole line, spaces kept");

        var (argCode, fromArgument, _) = await RunAsync(null, "hash-passcode", "an argument");
        Assert.That(argCode, Is.Zero);
        Assert.That(fromArgument, Does.StartWith($"pbkdf2-sha256${PasscodeHasher.DefaultIterations}$"));
        Assert.That(PasscodeHasher.Verify("an argument", fromArgument), Is.True);

        var (badCode, _, badError) = await RunAsync(null, "hash-passcode", "--iterations", "5", "x");
        Assert.That(badCode, Is.EqualTo(2));
        Assert.That(badError, Does.Contain("usage"));
    }

    [Test]
    public async Task The_executable_takes_hashed_users_and_rules_from_configuration()
    {
        var (_, hash, _) = await RunAsync("op-passcode-4411", "hash-passcode", "--iterations", "1000");
        await using var server = await ServerProcess.StartAsync(
            [
                "--Broker:Authorization:Rules:0:Who=operator", "--Broker:Authorization:Rules:0:What=*",
                "--Broker:Authorization:Rules:0:Destination=/queue/ops.#", "--Broker:Authorization:Rules:0:Access=allow",
                "--Broker:LoginThrottling:MaxFailuresPerLogin=2",
            ],
            new Dictionary<string, string> { ["Broker__Users__operator"] = hash });

        await using var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connected = await client.ConnectAsync(login: "operator", passcode: "op-passcode-4411");
        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), server.Output);
        await client.SubscribeAndWaitAsync("ops", "/queue/ops.alerts");
        await client.SubscribeAsync("other", "/topic/anything");
        var refused = await client.ReceiveAsync();
        Assert.That(refused["message"], Is.EqualTo("subscribe to /topic/anything is not permitted"));

        await server.WaitForOutputAsync(l => l.Contains("Authorization: 1 rule(s)", StringComparison.Ordinal), 1, "the authorization line");
        Assert.That(server.Output, Does.Not.Contain("plain text"), "no plain passcodes configured");
        Assert.That(server.Output, Does.Not.Contain("op-passcode-4411"));
    }
}
