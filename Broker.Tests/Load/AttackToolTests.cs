using System.Globalization;
using NUnit.Framework;

namespace Broker.Tests.Load;

/// <summary>
/// The attack tool (Broker.Benchmarks 'attack'), run as its own process against a broker on real sockets, bounded
/// by a count: what it reports is what a user would see (the attacker refused with the limit named, the ordinary
/// client losing nothing). No timing is asserted.
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.None)]
public sealed class AttackToolTests
{
    private TestServer _server = null!;

    [OneTimeSetUp]
    public async Task StartAsync() => _server = await TestServer.StartAsync();

    [OneTimeTearDown]
    public async Task StopAsync() => await _server.DisposeAsync();

    [Test]
    public async Task Wildcard_attackers_get_max_destination_words_and_the_ordinary_client_loses_nothing()
    {
        var (exit, output) = await BenchmarksTool.RunAsync("attack", TimeSpan.FromSeconds(120), "wildcard", "--url", _server.WebSocketUri.ToString(), "--duration", "60", "--count", "20",
            "--drain", "10", "--server-pid", Environment.ProcessId.ToString(CultureInfo.InvariantCulture));

        Assert.That(exit, Is.Zero, output);
        var result = BenchmarksTool.ResultLine(output);
        Assert.That(result["attack"], Is.EqualTo("wildcard"), output);
        Assert.That(long.Parse(result["attacker_ops"], CultureInfo.InvariantCulture), Is.GreaterThanOrEqualTo(20), output);
        Assert.That(result["limits"], Does.StartWith("max-destination-words:"), output);
        Assert.That(output, Does.Contain("attacker got ERROR").And.Contain("max-destination-words"));
        Assert.That(result["lost"], Is.EqualTo("0"), output);
        Assert.That(long.Parse(result["round_trips"], CultureInfo.InvariantCulture), Is.Positive, output);
        Assert.That(result["rss_max_mib"], Is.Not.EqualTo("-"), output);
    }

    [Test]
    public async Task An_unknown_attack_is_refused_with_the_usage()
    {
        var (exit, output) = await BenchmarksTool.RunAsync("attack", TimeSpan.FromSeconds(120), "nonsense", "--url", _server.WebSocketUri.ToString());

        Assert.That(exit, Is.EqualTo(2), output);
        Assert.That(output, Does.Contain("unknown attack 'nonsense'").And.Contain("connect-body"));
    }
}
