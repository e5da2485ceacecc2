using NUnit.Framework;

namespace Broker.Tests.Load;

/// <summary>
/// The load tool (Broker.Benchmarks 'load'), run as its own process against a broker on real sockets:
/// tiny scenarios, checked for what the tool reports (no timing is asserted).
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.None)]
public sealed class LoadToolTests
{
    private TestServer _server = null!;

    [OneTimeSetUp]
    public async Task StartAsync() => _server = await TestServer.StartAsync();

    [OneTimeTearDown]
    public async Task StopAsync() => await _server.DisposeAsync();

    [Test]
    public async Task Fan_out_over_WebSocket_is_reported_complete_with_latencies()
    {
        var (exit, output) = await RunAsync("--url", _server.WebSocketUri.ToString(), "--destination", "/topic/load.ws", "--subscribers", "3", "--messages", "300");

        Assert.That(exit, Is.Zero, output);
        var result = ResultLine(output);
        Assert.That(result["delivered"], Is.EqualTo("900"), output);
        Assert.That(result["expected"], Is.EqualTo("900"), output);
        Assert.That(result["lost"], Is.EqualTo("0"));
        Assert.That(result["duplicates"], Is.EqualTo("0"));
        Assert.That(result["out_of_order"], Is.EqualTo("0"));
        Assert.That(double.Parse(result["p50_ms"], System.Globalization.CultureInfo.InvariantCulture), Is.GreaterThanOrEqualTo(0));
    }

    [Test]
    public async Task Paced_publishers_over_TCP_are_reported_complete()
    {
        var (exit, output) = await RunAsync("--url", $"tcp://127.0.0.1:{_server.TcpPort}", "--destination", "/topic/load.tcp", "--subscribers", "2",
            "--publishers", "2", "--messages", "100", "--rate", "1000");

        Assert.That(exit, Is.Zero, output);
        var result = ResultLine(output);
        Assert.That(result["delivered"], Is.EqualTo("200"), output);
        Assert.That(result["lost"], Is.EqualTo("0"));
    }

    [Test]
    public async Task Competing_consumers_with_individual_acks_get_each_message_once()
    {
        var (exit, output) = await RunAsync("--url", _server.WebSocketUri.ToString(), "--destination", "/queue/load-test", "--subscribers", "3",
            "--publishers", "2", "--messages", "500", "--ack", "client-individual", "--prefetch", "10");

        Assert.That(exit, Is.Zero, output);
        var result = ResultLine(output);
        Assert.That(result["delivered"], Is.EqualTo("500"), output);
        Assert.That(result["expected"], Is.EqualTo("500"));
        Assert.That(result["duplicates"], Is.EqualTo("0"));
    }

    [Test]
    public async Task Idle_mode_holds_every_connection_and_reports_memory_per_connection()
    {
        var (exit, output) = await RunAsync("idle", "--url", _server.WebSocketUri.ToString(), "--connections", "20", "--settle", "0",
            "--server-pid", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.That(exit, Is.Zero, output);
        var result = ResultLine(output);
        Assert.That(result["held"], Is.EqualTo("20"), output);
        Assert.That(result["rss_after_kib"], Is.Not.Empty);
    }

    [Test]
    public async Task An_ERROR_from_the_broker_makes_the_run_fail()
    {
        // The broker refuses a SEND to a destination outside /topic/ and /queue/ with an ERROR.
        var (exit, output) = await RunAsync("--url", _server.WebSocketUri.ToString(), "--destination", "/nowhere/x", "--subscribers", "1", "--messages", "10",
            "--drain-timeout", "1");

        Assert.That(exit, Is.Not.Zero, output);
        Assert.That(output, Does.Contain("error:"));
    }

    private static Dictionary<string, string> ResultLine(string output) => BenchmarkTool.ResultLine(output);

    private static Task<(int Exit, string Output)> RunAsync(params string[] args) => BenchmarkTool.RunAsync(["load", .. args]);
}
