using Broker.Resources;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace Broker.Tests.Sessions;

/// <summary>
/// Read loops decode into frames lent per read (FrameCache). A connection whose read ended in the middle of a frame
/// resumes decoding into that frame later, so it must keep it: lent to another connection meanwhile, the other's
/// frame would be decoded over it (seen under attack as SENDs answered "already connected" or never completed).
/// </summary>
[TestFixture]
public sealed class PartialFrameIsolationTests
{
    private const int Pairs = 6;
    private const int Rounds = 15;

    [Test]
    public async Task A_frame_left_partial_is_completed_intact_while_other_connections_send_whole_frames()
    {
        await using var server = await TestServer.StartAsync();
        var budget = server.Services.GetRequiredService<MemoryBudget>();
        await using var subscriber = await StompTestClient.ConnectTcpAsync(server.TcpPort);
        await subscriber.ConnectAsync();
        await subscriber.SubscribeAndWaitAsync("a", "/topic/partial.a");
        await subscriber.SubscribeAndWaitAsync("b", "/topic/partial.b");

        var trickling = new List<StompTestClient>();
        var whole = new List<StompTestClient>();
        try
        {
            for (var i = 0; i < Pairs; i++)
            {
                trickling.Add(await StompTestClient.ConnectTcpAsync(server.TcpPort));
                whole.Add(await StompTestClient.ConnectTcpAsync(server.TcpPort));
                await trickling[i].ConnectAsync();
                await whole[i].ConnectAsync();
            }

            const string head = "SEND\ndestination:/topic/partial.a\nround:";
            for (var round = 0; round < Rounds; round++)
            {
                // Half a SEND from each trickling connection, read by the server and held as a partial frame...
                foreach (var client in trickling)
                {
                    await client.SendRawAsync(head);
                }

                await Eventually.That(() => budget.UsedBy(MemoryComponent.PartialFrames) >= Pairs * head.Length, "the partial frames read");

                // ...while the others send whole SENDs...
                for (var i = 0; i < Pairs; i++)
                {
                    await whole[i].PublishAsync("/topic/partial.b", $"b {round} {i}", ("receipt", $"b{round}.{i}"));
                }

                for (var i = 0; i < Pairs; i++)
                {
                    await whole[i].ExpectReceiptAsync($"b{round}.{i}");
                }

                // ...then the rest of each: every one completes as the SEND its connection began.
                for (var i = 0; i < Pairs; i++)
                {
                    await trickling[i].SendRawAsync($"{round}\nreceipt:a{round}.{i}\n\na {round} {i}\0");
                }

                for (var i = 0; i < Pairs; i++)
                {
                    await trickling[i].ExpectReceiptAsync($"a{round}.{i}");
                }
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (var n = 0; n < 2 * Pairs * Rounds; n++)
            {
                var message = await subscriber.ReceiveAsync();
                var kind = message["subscription"];
                Assert.That(message.BodyText, Does.StartWith(kind + " "), "each message went where its own SEND said");
                Assert.That(seen.Add(message.BodyText), Is.True, "no message twice");
                if (kind == "a")
                {
                    Assert.That(message["round"], Is.EqualTo(message.BodyText.Split(' ')[1]), "the headers are the trickling SEND's own");
                }
            }
        }
        finally
        {
            foreach (var client in trickling.Concat(whole))
            {
                await client.DisposeAsync();
            }
        }
    }
}
