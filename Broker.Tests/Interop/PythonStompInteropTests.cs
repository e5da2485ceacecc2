using NUnit.Framework;

namespace Broker.Tests.Interop;

/// <summary>
/// stomp.py 8 (Debian's python3-stomp) against the broker over raw TCP. Each case runs one
/// scenario of Interop/python/stomp_scenarios.py with Debian's /usr/bin/python3.
/// </summary>
[TestFixture]
public sealed class PythonStompInteropTests : InteropFixture
{
    protected override string ScriptFolder => "python";

    protected override string ClientName => "stomp.py";

    protected override async Task CheckPrerequisitesAsync()
    {
        var probe = File.Exists(ExternalClient.DebianPython)
            ? await ExternalClient.RunAsync(
                ExternalClient.DebianPython,
                ["-c", "import stomp; print(stomp.__version__)"],
                ScriptDirectory,
                TimeSpan.FromSeconds(30))
            : null;
        ExternalClient.RequirePrerequisite(
            probe is { ExitCode: 0 },
            $"{ExternalClient.DebianPython} cannot `import stomp` (apt-get install python3-stomp; ./test.sh does)"
            + (probe is null ? string.Empty : $": {probe.StandardError.Trim()}"));
    }

    [TestCase("pubsub")]
    [TestCase("receipt")]
    [TestCase("ack-client-individual")]
    [TestCase("transaction")]
    [TestCase("heartbeat")]
    [TestCase("binary")]
    [TestCase("large")]
    [TestCase("version10")]
    [TestCase("version11")]
    public Task Scenario(string scenario) =>
        RunScenarioAsync(scenario, ExternalClient.DebianPython, "stomp_scenarios.py", "127.0.0.1", Server.TcpPort.ToString(System.Globalization.CultureInfo.InvariantCulture), scenario);
}
