using Broker.Protocol;
using Broker.Resources;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace Broker.Tests.Resources;

/// <summary>
/// <c>MemoryLimit</c> held against the process's own memory, over real sockets: a probe the test sets stands for the
/// resident memory, and a <see cref="FakeTimeProvider"/> moves the monitor's once-a-second sample. Above the limit a
/// publisher is flow-controlled as when the budget is (a consumer is served meanwhile, nothing is lost, it resumes
/// below the low watermark, past <c>FlowControlTimeout</c> it gets the <c>memory-limit</c> ERROR), and a collection is
/// induced at most once per <see cref="ProcessMemoryMonitor.CollectInterval"/> so that garbage does not keep it blocked.
/// </summary>
[TestFixture]
public sealed class ProcessMemoryTests
{
    private const long MemoryLimit = 64L * 1024 * 1024;
    private const long Below = 10L * 1024 * 1024;
    private const long Above = 100L * 1024 * 1024;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Test]
    public async Task Above_the_limit_a_publisher_is_flow_controlled_while_a_consumer_is_served_and_resumes_with_nothing_lost()
    {
        const int count = 200;
        var (time, probe) = (new FakeTimeProvider(), new FakeProcessMemory(Below));
        await using var server = await StartAsync(time, probe);
        var budget = server.Services.GetRequiredService<MemoryBudget>();
        using var meter = new BrokerMeter(server.Services);

        // Messages waiting in a queue, for the consumer to take while the publisher is blocked.
        await using var publisher = await ConnectAsync(server);
        for (var i = 0; i < 20; i++)
        {
            await publisher.PublishAsync("/queue/pm-side", $"side {i}");
        }

        await publisher.PublishAsync("/queue/pm-side", "side 20", ("receipt", "side"));
        await publisher.ExpectReceiptAsync("side");
        await using var consumer = await ConnectAsync(server);
        await consumer.SubscribeAndWaitAsync("t", "/topic/pm");

        probe.Resident = Above;
        time.Advance(ProcessMemoryMonitor.SampleInterval);
        Assert.That(budget.IsAboveHighWatermark, Is.True, "the process's memory alone takes the broker over its limit");
        Assert.That(budget.Used, Is.LessThan(budget.LowWatermark), "not what it holds for clients");
        Assert.That(meter.Observe().Value("broker.memory.process"), Is.EqualTo(Above));
        Assert.That(probe.Collections, Is.EqualTo(1), "a collection was tried first");

        var publishing = Task.Run(async () =>
        {
            for (var i = 0; i < count; i++)
            {
                await publisher.PublishAsync("/topic/pm", $"{i}");
            }

            await publisher.PublishAsync("/topic/pm", "end", ("receipt", "done"));
        });
        await Eventually.That(() => meter.Observe().Value("broker.flow.blocked") == 1 && budget.BlockedPublishers == 1, "the publisher flow-controlled", Bound);
        Assert.That(publisher.TryTake(), Is.Null, "no RECEIPT while blocked");

        // The consumer is served meanwhile: a SUBSCRIBE answered, and the queued messages delivered.
        var topicSeen = await FlowControlTests.SideQueueServedAsync(consumer, "/queue/pm-side", Bound);

        // Still above, samples going on: the collection found nothing and nothing changed since, so none is repeated.
        for (var t = TimeSpan.Zero; t < 2 * ProcessMemoryMonitor.CollectInterval; t += ProcessMemoryMonitor.SampleInterval)
        {
            time.Advance(ProcessMemoryMonitor.SampleInterval);
        }

        Assert.That(probe.Collections, Is.EqualTo(1), "no second collection while nothing changed");
        Assert.That(budget.BlockedPublishers, Is.EqualTo(1), "still blocked");
        Assert.That(publisher.TryTake(), Is.Null);

        // The process grows (by more than MemoryLimit/64): worth another collection, as soon as one is due.
        probe.Resident = Above + MemoryLimit / 32;
        time.Advance(ProcessMemoryMonitor.SampleInterval);
        Assert.That(probe.Collections, Is.EqualTo(2), "another once the process grew");

        // The process's memory falls below the low watermark: the publisher resumes and every message arrives, in order.
        probe.Resident = Below;
        time.Advance(ProcessMemoryMonitor.SampleInterval);
        Assert.That(budget.IsAboveHighWatermark, Is.False);
        await publishing.WaitAsync(Bound);
        await publisher.ExpectReceiptAsync("done");
        while (topicSeen.Count <= count)
        {
            topicSeen.Add((await consumer.ReceiveAsync(Bound)).BodyText);
        }

        Assert.That(topicSeen, Is.EqualTo(Enumerable.Range(0, count).Select(i => $"{i}").Append("end")));
        Assert.That(budget.BlockedPublishers, Is.Zero);
        Assert.That(probe.Collections, Is.EqualTo(2), "no collection below the limit");
    }

    [Test]
    public async Task A_burst_between_two_samples_is_held_against_the_limit_on_top_of_the_last_sample()
    {
        const int count = 30;
        var (time, probe) = (new FakeTimeProvider(), new FakeProcessMemory(40L * 1024 * 1024));
        await using var server = await StartAsync(time, probe, o => o.MaxPendingBytes = 64 * 1024 * 1024); // the whole queue at once

        var budget = server.Services.GetRequiredService<MemoryBudget>();
        await using var publisher = await ConnectAsync(server);

        // 1 MiB messages to a queue nobody consumes yet, all within one sample: 40 MiB sampled + 24 MiB counted reach 64.
        var body = new string('b', 1024 * 1024);
        var publishing = Task.Run(async () =>
        {
            for (var i = 0; i < count; i++)
            {
                await publisher.PublishAsync("/queue/pm-burst", $"{i}:{body}");
            }

            await publisher.PublishAsync("/queue/pm-burst", "end", ("receipt", "done"));
        });
        await Eventually.That(() => budget.BlockedPublishers == 1, "the publisher flow-controlled before the next sample", Bound);
        Assert.That(budget.Used, Is.LessThan(MemoryLimit), "the budget alone is under the limit");
        Assert.That(budget.ProcessMemory, Is.GreaterThanOrEqualTo(MemoryLimit), "the last sample and what was counted since are not");
        Assert.That(publisher.TryTake(), Is.Null);

        // A consumer drains the queue: the budget falls back to what it held at the sample and the publisher resumes.
        await using var consumer = await ConnectAsync(server);
        await consumer.SubscribeAsync("q", "/queue/pm-burst");
        for (var i = 0; i < count; i++)
        {
            Assert.That((await consumer.ReceiveAsync(Bound)).BodyText, Does.StartWith($"{i}:"));
        }

        Assert.That((await consumer.ReceiveAsync(Bound)).BodyText, Is.EqualTo("end"));
        await publishing.WaitAsync(Bound);
        await publisher.ExpectReceiptAsync("done");
        Assert.That(probe.Collections, Is.Zero, "no sample was above the limit");
    }

    [Test]
    public async Task Garbage_does_not_keep_a_publisher_blocked_a_collection_is_induced_at_most_once_per_interval()
    {
        var (time, probe) = (new FakeTimeProvider(), new FakeProcessMemory(Below) { AfterCollect = Below });
        await using var server = await StartAsync(time, probe);
        var budget = server.Services.GetRequiredService<MemoryBudget>();
        using var meter = new BrokerMeter(server.Services);
        await using var publisher = await ConnectAsync(server);

        // Above the limit, but garbage: the collection before blocking anyone brings it down.
        probe.Resident = Above;
        time.Advance(ProcessMemoryMonitor.SampleInterval);
        Assert.That(probe.Collections, Is.EqualTo(1));
        Assert.That(budget.IsAboveHighWatermark, Is.False);
        Assert.That(meter.Observe().Value("broker.memory.process"), Is.EqualTo(Below), "the sample after the collection");
        await publisher.PublishAsync("/topic/gc", "1", ("receipt", "r1"));
        await publisher.ExpectReceiptAsync("r1");

        // Garbage again within the interval: no collection yet, so the publisher waits for the next one.
        probe.Resident = Above;
        time.Advance(ProcessMemoryMonitor.SampleInterval);
        Assert.That(probe.Collections, Is.EqualTo(1), "not twice within the interval");
        Assert.That(budget.IsAboveHighWatermark, Is.True);
        // (The connection is not read from after a SEND: the first is taken, the second waits.)
        await publisher.PublishAsync("/topic/gc", "2");
        await publisher.PublishAsync("/topic/gc", "3", ("receipt", "r3"));
        await Eventually.That(() => budget.BlockedPublishers == 1, "the publisher flow-controlled", Bound);
        while (probe.Collections == 1)
        {
            Assert.That(publisher.TryTake(), Is.Null, "no RECEIPT while blocked");
            time.Advance(ProcessMemoryMonitor.SampleInterval);
        }

        Assert.That(time.GetUtcNow() - time.Start, Is.EqualTo(ProcessMemoryMonitor.SampleInterval + ProcessMemoryMonitor.CollectInterval), "the second collection one interval after the first");
        Assert.That(budget.IsAboveHighWatermark, Is.False);
        await publisher.ExpectReceiptAsync("r3");
    }

    [Test]
    public async Task A_publisher_blocked_by_the_process_memory_past_FlowControlTimeout_gets_the_memory_limit_ERROR()
    {
        var (time, probe) = (new FakeTimeProvider(), new FakeProcessMemory(Below));
        await using var server = await StartAsync(time, probe, o => o.FlowControlTimeout = TimeSpan.FromSeconds(10));
        var budget = server.Services.GetRequiredService<MemoryBudget>();
        using var meter = new BrokerMeter(server.Services);
        await using var publisher = await ConnectAsync(server);
        await using var consumer = await ConnectAsync(server);

        probe.Resident = Above;
        time.Advance(ProcessMemoryMonitor.SampleInterval);
        await publisher.PublishAsync("/topic/stuck", "x");
        await publisher.PublishAsync("/topic/stuck", "y", ("receipt", "never"));
        await Eventually.That(() => budget.BlockedPublishers == 1, "the publisher flow-controlled", Bound);
        for (var t = TimeSpan.Zero; t <= TimeSpan.FromSeconds(10); t += ProcessMemoryMonitor.SampleInterval)
        {
            time.Advance(ProcessMemoryMonitor.SampleInterval);
        }

        var error = await publisher.ReceiveAsync(Bound);
        Assert.That(error.Command, Is.EqualTo(StompCommand.Error), error.ToString());
        Assert.That(error["message"], Does.StartWith("limit exceeded: memory-limit"));
        Assert.That(await publisher.WaitClosedAsync(Bound), Is.True, "and closes");
        Assert.That(meter.Value("broker.limits.exceeded", LimitNames.MemoryLimit), Is.EqualTo(1));

        // A connection that only consumes is still served.
        await consumer.SubscribeAndWaitAsync("o", "/topic/other");
    }

    [Test]
    public async Task With_MemoryCalculation_Budget_the_process_memory_is_not_held_against_the_limit()
    {
        var (time, probe) = (new FakeTimeProvider(), new FakeProcessMemory(Above));
        await using var server = await StartAsync(time, probe, o => o.MemoryCalculation = MemoryCalculation.Budget);
        var budget = server.Services.GetRequiredService<MemoryBudget>();
        using var meter = new BrokerMeter(server.Services);
        await using var publisher = await ConnectAsync(server);

        time.Advance(ProcessMemoryMonitor.SampleInterval);
        await publisher.PublishAsync("/topic/budget", "x", ("receipt", "r"));
        await publisher.ExpectReceiptAsync("r");
        Assert.That(budget.IsAboveHighWatermark, Is.False);
        Assert.That(probe.Collections, Is.Zero);
        Assert.That(meter.Observe().Value("broker.memory.process"), Is.Zero, "not reported");
    }

    [Test]
    public void The_probe_reads_the_resident_memory_as_it_is_now()
    {
        using var probe = new ProcessMemoryProbe();
        var before = probe.ResidentBytes();
        Assert.That(before, Is.InRange(Environment.WorkingSet / 2, Environment.WorkingSet * 2), "the resident set, as the runtime reports it");

        // 64 MiB of fresh native memory (malloc maps new pages for a block this large, unlike the GC, which may reuse
        // pages already resident), touched page by page: resident now.
        const int size = 64 * 1024 * 1024;
        var block = System.Runtime.InteropServices.Marshal.AllocHGlobal(size);
        try
        {
            for (var i = 0; i < size; i += 4096)
            {
                System.Runtime.InteropServices.Marshal.WriteByte(block, i, 1);
            }

            Assert.That(probe.ResidentBytes() - before, Is.GreaterThan(48L * 1024 * 1024), "each read is fresh (the file is read again from its start)");
        }
        finally
        {
            System.Runtime.InteropServices.Marshal.FreeHGlobal(block);
        }
    }

    [Test]
    public async Task A_sample_that_fails_is_logged_the_last_one_stands_and_the_server_stays_up()
    {
        var (time, probe) = (new FakeTimeProvider(), new FakeProcessMemory(Above));
        await using var server = await StartAsync(time, probe);
        var budget = server.Services.GetRequiredService<MemoryBudget>();
        time.Advance(ProcessMemoryMonitor.SampleInterval);
        Assert.That(budget.ProcessMemory, Is.EqualTo(Above));

        // On a timer thread the exception would have ended the process (here, it would surface from Advance).
        probe.Fails = true;
        probe.Resident = Below;
        Assert.DoesNotThrow(() => time.Advance(ProcessMemoryMonitor.SampleInterval));
        Assert.That(budget.ProcessMemory, Is.EqualTo(Above), "the last sample stands");

        probe.Fails = false;
        time.Advance(ProcessMemoryMonitor.SampleInterval);
        Assert.That(budget.ProcessMemory, Is.EqualTo(Below), "sampling goes on");
        await using var client = await ConnectAsync(server);
        await client.PublishAsync("/topic/after", "x", ("receipt", "r"));
        await client.ExpectReceiptAsync("r");
    }

    [Test]
    public void The_probe_answers_after_it_was_disposed_as_a_last_sample_may_at_shutdown()
    {
        var probe = new ProcessMemoryProbe();
        probe.Dispose();
        Assert.That(probe.ResidentBytes(), Is.InRange(Environment.WorkingSet / 2, Environment.WorkingSet * 2), "the portable figure");
    }

    private static Task<TestServer> StartAsync(FakeTimeProvider time, FakeProcessMemory probe, Action<StompBrokerOptions>? configure = null) =>
        TestServer.StartAsync(o =>
        {
            o.MemoryLimit = MemoryLimit;
            o.FlowControlTimeout = Bound;
            o.HeartbeatSend = o.HeartbeatReceive = TimeSpan.Zero;
            configure?.Invoke(o);
        }, services: s =>
        {
            s.AddSingleton<TimeProvider>(time);
            s.AddSingleton<IProcessMemoryProbe>(probe);
        });

    private static async Task<StompTestClient> ConnectAsync(TestServer server)
    {
        var client = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        var connected = await client.ConnectAsync();
        Assert.That(connected.Command, Is.EqualTo(StompCommand.Connected), connected.ToString());
        return client;
    }

    // The process's memory as the test says it is; a collection leaves AfterCollect, if set.
    private sealed class FakeProcessMemory(long resident) : IProcessMemoryProbe
    {
        private long _resident = resident;
        private int _collections;

        public long Resident
        {
            get => Interlocked.Read(ref _resident);
            set => Interlocked.Exchange(ref _resident, value);
        }

        public long? AfterCollect { get; init; }

        public int Collections => Volatile.Read(ref _collections);

        public bool Fails { get; set; }

        public long ResidentBytes() => Fails ? throw new IOException("/proc/self/statm: read failed") : Resident;

        public void Collect()
        {
            Interlocked.Increment(ref _collections);
            if (AfterCollect is { } after)
            {
                Resident = after;
            }
        }
    }
}
