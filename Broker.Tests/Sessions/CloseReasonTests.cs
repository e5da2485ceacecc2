using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Broker.Protocol;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

/// <summary>What an operator sees of why connections close: <c>broker.connections.closed</c> with its <c>reason</c> tag.</summary>
[TestFixture]
public sealed class CloseReasonTests
{
    [Test]
    public async Task Each_close_is_counted_once_under_its_reason()
    {
        await using var harness = new SessionHarness();
        var reasons = new ConcurrentQueue<string>();
        var factory = harness.Services.GetRequiredService<IMeterFactory>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            // Only this harness's meter: other tests' brokers run in parallel.
            if (instrument.Meter.Scope == factory && instrument.Name == "broker.connections.closed")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "reason")
                {
                    reasons.Enqueue($"{tag.Value}x{value}");
                }
            }
        });
        listener.Start();

        var leaving = await harness.OpenConnectedAsync();
        await leaving.SendFrameAsync(StompCommand.Disconnect, ("receipt", "bye"));
        await leaving.ExpectReceiptAsync("bye");
        var broken = await harness.OpenConnectedAsync();
        await broken.SendFrameAsync(StompCommand.Subscribe, ("destination", "/nowhere/x"), ("id", "s"));
        Assert.That((await broken.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Error));
        var (dropped, connected) = await harness.OpenConnectedAsync("1.2", "guest");
        await dropped.DisposeAsync();
        await harness.WaitSessionGoneAsync(connected["session"]!);
        await Eventually.That(() => reasons.Count >= 3, "three closes counted");

        Assert.That(reasons, Is.EquivalentTo(new[] { "disconnectx1", "errorx1", "peer_gonex1" }));
    }
}
