using Broker.Protocol;
using Broker.Resources;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace Broker.Tests.Resources;

/// <summary>
/// When the idle compaction compacts the heap (<c>Broker:IdleCompaction</c>): only after a quiet period that
/// followed activity, only with holes enough, at most once per quiet spell and per <c>MinInterval</c>; and that
/// frames, not heart-beats, are what the sessions count as activity. The clock is a <see cref="FakeTimeProvider"/>
/// (its timer fires inside <see cref="FakeTimeProvider.Advance"/>) and the collector a fake that counts compactions.
/// </summary>
[TestFixture]
public sealed class IdleCompactionTests
{
    private const long MiB = 1024 * 1024;

    [Test]
    public void A_quiet_period_after_activity_brings_one_compaction_and_no_more_until_there_is_activity_again()
    {
        var (time, activity, heap, compaction) = Start(new IdleCompactionOptions { Enabled = true, MinInterval = TimeSpan.Zero });

        Advance(time, TimeSpan.FromMinutes(1));
        Assert.That(heap.Compactions, Is.Zero, "a node that never saw a frame has nothing of its own to give back");

        activity.Mark();
        Advance(time, TimeSpan.FromSeconds(4));
        Assert.That(heap.Compactions, Is.Zero, "4 s of quiet is not the 5 s quiet period");
        Advance(time, TimeSpan.FromSeconds(3));
        Assert.That(heap.Compactions, Is.EqualTo(1));

        Advance(time, TimeSpan.FromMinutes(10));
        Assert.That(heap.Compactions, Is.EqualTo(1), "staying quiet brings no second one");

        activity.Mark();
        Advance(time, TimeSpan.FromSeconds(7));
        Assert.That(heap.Compactions, Is.EqualTo(2));
        compaction.Dispose();
    }

    [Test]
    public void Activity_within_the_quiet_period_puts_the_compaction_off()
    {
        var (time, activity, heap, _) = Start(new IdleCompactionOptions { Enabled = true });

        // A frame every 3 s for a minute: never 5 s of quiet.
        for (var i = 0; i < 20; i++)
        {
            activity.Mark();
            Advance(time, TimeSpan.FromSeconds(3));
        }

        Assert.That(heap.Compactions, Is.Zero);
        Advance(time, TimeSpan.FromSeconds(4));
        Assert.That(heap.Compactions, Is.EqualTo(1), "5 s after the last frame");
    }

    [Test]
    public void Compactions_are_at_least_min_interval_apart()
    {
        var (time, activity, heap, _) = Start(new IdleCompactionOptions { Enabled = true, MinInterval = TimeSpan.FromMinutes(5) });
        activity.Mark();
        Advance(time, TimeSpan.FromSeconds(7));
        Assert.That(heap.Compactions, Is.EqualTo(1));

        // Activity and quiet again a minute later: the next one waits until five minutes after the first.
        Advance(time, TimeSpan.FromMinutes(1));
        activity.Mark();
        Advance(time, TimeSpan.FromMinutes(3));
        Assert.That(heap.Compactions, Is.EqualTo(1));
        Advance(time, TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(2));
        Assert.That(heap.Compactions, Is.EqualTo(2));
    }

    [TestCase(5, 100, 110, TestName = "Under MinReclaimableBytes (15 MiB committed beyond 95 MiB live)")]
    [TestCase(10, 200, 210, TestName = "Under a tenth of what is committed (20 MiB beyond 190 MiB live)")]
    public void A_heap_with_little_to_give_back_is_left_alone_and_looked_at_once_per_quiet_spell(long fragmentedMiB, long heapMiB, long committedMiB)
    {
        var (time, activity, heap, _) = Start(new IdleCompactionOptions { Enabled = true, MinReclaimableBytes = 16 * MiB });
        heap.State = new HeapState(fragmentedMiB * MiB, heapMiB * MiB, committedMiB * MiB);
        activity.Mark();
        Advance(time, TimeSpan.FromMinutes(1));
        Assert.That(heap.Compactions, Is.Zero);
        Assert.That(heap.Reads, Is.EqualTo(1), "one look after the quiet period, not one per tick");

        heap.State = new HeapState(10 * MiB, 100 * MiB, 110 * MiB);
        activity.Mark();
        Advance(time, TimeSpan.FromSeconds(7));
        Assert.That(heap.Compactions, Is.EqualTo(1), "with 20 MiB committed beyond 90 MiB live it is worth it");
    }

    [Test]
    public void Disabled_it_never_compacts()
    {
        var (time, activity, heap, _) = Start(new IdleCompactionOptions { Enabled = false });
        activity.Mark();
        Advance(time, TimeSpan.FromMinutes(10));
        Assert.That(heap.Compactions, Is.Zero);
        Assert.That(heap.Reads, Is.Zero);
    }

    [Test]
    public void The_server_enables_it_and_a_broker_embedded_elsewhere_does_not_by_default()
    {
        Assert.That(new StompBrokerOptions().IdleCompaction.Enabled, Is.False);
        var configuration = new ConfigurationBuilder().AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json")).Build();
        var options = new StompBrokerOptions();
        configuration.GetSection("Broker").Bind(options);
        Assert.That(options.IdleCompaction.Enabled, Is.True);
        Assert.That(options.IdleCompaction.QuietPeriod, Is.EqualTo(TimeSpan.FromSeconds(5)));
    }

    // Over sessions: what a client reads or writes as frames keeps the node busy; heart-beats, both ways, do not.
    [Test]
    public async Task Frames_keep_the_broker_busy_and_heart_beats_do_not()
    {
        var time = new FakeTimeProvider();
        var heap = new FakeHeap();
        await using var harness = new SessionHarness(
            o => o.IdleCompaction = new IdleCompactionOptions { Enabled = true, MinInterval = TimeSpan.Zero },
            b => b.Services.AddSingleton<TimeProvider>(time).AddSingleton<IHeapProbe>(heap));
        var compaction = harness.Services.GetRequiredService<IdleCompaction>();
        await compaction.StartAsync(CancellationToken.None);

        var client = harness.Open();
        await client.ConnectAsync(heartbeat: "1000,1000");
        await client.SubscribeAndWaitAsync("s", "/topic/idle");

        // A SEND (and the MESSAGE it brings back) every second for 20 s: busy throughout.
        for (var i = 0; i < 20; i++)
        {
            await client.PublishAsync("/topic/idle", $"m{i}");
            Assert.That((await client.ReceiveAsync()).Command, Is.EqualTo(StompCommand.Message));
            Advance(time, TimeSpan.FromSeconds(1));
        }

        Assert.That(heap.Compactions, Is.Zero);

        // Then only heart-beats for 10 s, one a second each way: quiet. (The clock moves in steps the writer
        // loop can follow, so that each heart-beat goes out in the second it is due.)
        var beatsBefore = client.Heartbeats;
        for (var i = 0; i < 40; i++)
        {
            if (i % 4 == 0)
            {
                await client.SendRawAsync("\n");
            }

            time.Advance(TimeSpan.FromMilliseconds(250));
            await Task.Delay(20);
        }

        await Eventually.That(() => client.Heartbeats >= beatsBefore + 5, "the server's heart-beats in the quiet seconds");
        Assert.That(heap.Compactions, Is.EqualTo(1), "one compaction once only heart-beats flow");
        await client.SendFrameAsync(StompCommand.Begin, ("transaction", "t"), ("receipt", "still-here"));
        await client.ExpectReceiptAsync("still-here");
        await compaction.StopAsync(CancellationToken.None);
    }

    private static (FakeTimeProvider Time, BrokerActivity Activity, FakeHeap Heap, IdleCompaction Compaction) Start(IdleCompactionOptions options)
    {
        var time = new FakeTimeProvider();
        var activity = new BrokerActivity();
        var heap = new FakeHeap();
        var compaction = new IdleCompaction(time, activity, heap, options, NullLogger.Instance);
        compaction.StartAsync(CancellationToken.None).GetAwaiter().GetResult();
        return (time, activity, heap, compaction);
    }

    // In steps of the compaction's one-second check, as the clock would move.
    private static void Advance(FakeTimeProvider time, TimeSpan by)
    {
        var step = TimeSpan.FromMilliseconds(250);
        for (var moved = TimeSpan.Zero; moved < by; moved += step)
        {
            time.Advance(by - moved < step ? by - moved : step);
        }
    }

    /// <summary>A collector whose last collection left <see cref="State"/>; counts looks and compactions.</summary>
    private sealed class FakeHeap : IHeapProbe
    {
        private int _reads;
        private int _compactions;

        public HeapState State { get; set; } = new(25 * MiB, 100 * MiB, 120 * MiB);

        public int Reads => Volatile.Read(ref _reads);

        public int Compactions => Volatile.Read(ref _compactions);

        public HeapState Read()
        {
            Interlocked.Increment(ref _reads);
            return State;
        }

        public HeapCompaction Compact()
        {
            Interlocked.Increment(ref _compactions);
            var after = State with { FragmentedBytes = 0, CommittedBytes = State.CommittedBytes - State.FragmentedBytes };
            return new HeapCompaction(State, after, 200 * MiB, 175 * MiB, TimeSpan.FromMilliseconds(40));
        }
    }
}
