using Broker.Routing;
using NUnit.Framework;

namespace Broker.Tests.Routing;

/// <summary>Walks take no lock: while other bindings come and go around them, the ones that stay are always found, once.</summary>
[TestFixture]
public sealed class TopicTrieConcurrencyTests
{
    [Test]
    public async Task Bindings_that_stay_are_found_once_by_every_walk_while_others_churn_around_them()
    {
        var trie = new TopicTrie<string>();
        string[] stayPatterns = ["a.#", "a.b.c", "*.b.*", "#.c", "a.*.c", "#"];
        foreach (var pattern in stayPatterns)
        {
            trie.Add(pattern, "stay:" + pattern);
        }

        // Churn on the same nodes (shared prefixes, the same '*' and '#' children, the very same patterns),
        // so lists are compacted and nodes pruned and made again, their ids reused, under the walks.
        string[] churnPatterns = ["a.#", "a.b.c", "a.b.#", "a.*", "*.b.*", "#.c", "a.b.c.d", "x.#", "a.*.c", "#"];
        using var stop = new CancellationTokenSource();
        var rounds = 0;
        var churn = Task.Run(() =>
        {
            var held = new List<TopicTrie<string>.Binding>();
            var random = new Random(11);
            while (!stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref rounds);
                for (var i = random.Next(1, 40); i > 0; i--)
                {
                    held.Add(trie.Add(churnPatterns[random.Next(churnPatterns.Length)], "churn"));
                }

                while (held.Count > random.Next(0, 30))
                {
                    var index = random.Next(held.Count);
                    trie.Remove(held[index]);
                    held[index] = held[^1];
                    held.RemoveAt(held.Count - 1);
                }
            }
        });

        var found = new List<string>();
        // Walk until the churn has done its rounds under the walks (however the threads are scheduled).
        for (var walk = 0; walk < 20_000 || Volatile.Read(ref rounds) < 2_000; walk++)
        {
            if (churn.IsCompleted)
            {
                break;
            }

            found.Clear();
            trie.Match("a.b.c", found, static (value, list) => list.Add(value));
            var stayed = found.Where(f => f.StartsWith("stay:", StringComparison.Ordinal)).Order().ToList();
            if (stayed.Count != stayPatterns.Length)
            {
                Assert.Fail($"walk {walk} found [{string.Join(", ", stayed)}]");
            }
        }

        stop.Cancel();
        await churn;
        Assert.That(Volatile.Read(ref rounds), Is.GreaterThanOrEqualTo(2_000));
        Assert.That(trie.Count, Is.GreaterThanOrEqualTo(stayPatterns.Length));
    }
}
