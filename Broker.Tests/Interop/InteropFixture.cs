using NUnit.Framework;

namespace Broker.Tests.Interop;

/// <summary>
/// What the third-party client fixtures share: a broker per fixture, the client's prerequisites
/// checked once, and each scenario run as a child process whose JSON verdict is asserted.
/// </summary>
[Category("Interop")]
public abstract class InteropFixture
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);

    private TestServer? _server;

    /// <summary>The folder of Interop/ holding the client's scenario script.</summary>
    protected abstract string ScriptFolder { get; }

    /// <summary>The client's name in failure messages.</summary>
    protected abstract string ClientName { get; }

    protected string ScriptDirectory => Path.Combine(ExternalClient.InteropDirectory, ScriptFolder);

    private protected TestServer Server => _server ?? throw new InvalidOperationException("the server is not running");

    [OneTimeSetUp]
    public async Task StartServer()
    {
        await CheckPrerequisitesAsync();
        _server = await StartServerAsync();
    }

    /// <summary>The broker the fixture's scenarios run against: the embedded test server, unless a fixture serves an app of its own.</summary>
    private protected virtual Task<TestServer> StartServerAsync() => TestServer.StartAsync();

    [OneTimeTearDown]
    public async Task StopServer()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    /// <summary>Fails (under CI) or ignores the fixture when the client is not installed.</summary>
    protected abstract Task CheckPrerequisitesAsync();

    protected async Task RunScenarioAsync(string scenario, string program, params string[] arguments)
    {
        var result = await ExternalClient.RunAsync(program, arguments, ScriptDirectory, ProcessTimeout);

        await TestContext.Out.WriteLineAsync(result.StandardOutput.Trim());
        Assert.That(result.Ok, Is.True, $"{ClientName} scenario '{scenario}' failed\n{result.Describe()}");
    }
}
