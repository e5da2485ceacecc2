using System.Text;
using System.Text.RegularExpressions;
using Broker.Cluster;
using Broker.Routing;
using NUnit.Framework;

namespace Broker.Tests.Cluster;

/// <summary>The pure parts of the cluster: how patterns ship as Redis globs, and the message wire format.</summary>
[TestFixture]
public sealed class ClusterWireTests
{
    [TestCase("a.*.c", "a.*.c")]
    [TestCase("a.#", "a*")]
    [TestCase("a.#.c", "a*c")]
    [TestCase("#.c", "*c")]
    [TestCase("#", "*")]
    [TestCase("*", "*")]
    [TestCase("a.#.#.b", "a*b")]
    [TestCase("*.b", "*.b")]
    [TestCase("we[ir]d?.*", "we\\[ir\\]d\\?.*")]
    public void A_pattern_ships_as_the_narrowest_glob_that_covers_it(string pattern, string glob) =>
        Assert.That(TopicGlob.From(pattern), Is.EqualTo(glob));

    // Every key a pattern matches must match its glob (Redis's rules: '*' any run, '?' one character,
    // '\' escapes), or a node would never be sent a message its subscriber should get.
    [Test]
    public void Every_key_a_pattern_matches_matches_its_glob()
    {
        var random = new Random(42);
        string[] words = ["a", "b", "c", "*", "#", "", "x?", "[y]"];
        string[] keyWords = ["a", "b", "c", "", "x?", "[y]", "ab"];
        var checkedMatches = 0;
        for (var i = 0; i < 20_000; i++)
        {
            var pattern = string.Join('.', Enumerable.Range(0, random.Next(1, 5)).Select(_ => words[random.Next(words.Length)]));
            var key = string.Join('.', Enumerable.Range(0, random.Next(1, 6)).Select(_ => keyWords[random.Next(keyWords.Length)]));
            if (!Destinations.IsWildcard(pattern) || !new TopicPattern(pattern).Matches(key))
            {
                continue;
            }

            checkedMatches++;
            var glob = TopicGlob.From(pattern);
            Assert.That(GlobMatches(glob, key), Is.True, $"pattern '{pattern}' matches '{key}', its glob '{glob}' does not");
        }

        Assert.That(checkedMatches, Is.GreaterThan(1000));
    }

    [Test]
    public void A_message_survives_the_wire_with_its_id_headers_and_binary_body()
    {
        var body = Enumerable.Range(0, 300).Select(i => (byte)i).ToArray();
        var message = new BrokerMessage("/topic/ignored", "node-42", [new("content-type", "application/octet-stream"), new("x-ünï", "a:b\nc")], body);

        var decoded = ClusterMessageCodec.Decode("/topic/k", ClusterMessageCodec.Encode(message));

        Assert.That(decoded, Is.Not.Null);
        Assert.That((decoded!.Destination, decoded.MessageId), Is.EqualTo(("/topic/k", "node-42")));
        Assert.That(decoded.Headers, Is.EqualTo(message.Headers));
        Assert.That(decoded.Body.ToArray(), Is.EqualTo(body));
    }

    [Test]
    public void Damaged_bytes_are_not_a_message()
    {
        var encoded = ClusterMessageCodec.Encode(new BrokerMessage("/topic/t", "id", [new("h", "v")], "body"u8.ToArray()));
        for (var length = 0; length < 8; length++)
        {
            Assert.That(ClusterMessageCodec.Decode("/topic/t", encoded.AsMemory(0, length)), Is.Null, $"cut at {length}");
        }

        encoded[0] = 2;
        Assert.That(ClusterMessageCodec.Decode("/topic/t", encoded), Is.Null, "another version");
    }

    [Test]
    public void A_published_message_carries_its_offset_and_epoch_in_front()
    {
        var published = Encoding.ASCII.GetBytes("1234:abcdef01:").Concat(new byte[] { 1, 2, 3 }).ToArray();

        Assert.That(ClusterMessageCodec.TrySplitPublished(published, out var offset, out var epoch, out var payload), Is.True);
        Assert.That((offset, epoch, payload.ToArray()), Is.EqualTo((1234L, "abcdef01", new byte[] { 1, 2, 3 })));
        Assert.That(ClusterMessageCodec.TrySplitPublished(Encoding.ASCII.GetBytes("x:e:"), out _, out _, out _), Is.False);
        Assert.That(ClusterMessageCodec.TrySplitPublished(Encoding.ASCII.GetBytes("12:"), out _, out _, out _), Is.False);
    }

    // Redis's stringmatchlen for '*', '?', '\' (the glob builder emits no classes).
    private static bool GlobMatches(string glob, string text)
    {
        var regex = new StringBuilder("^");
        for (var i = 0; i < glob.Length; i++)
        {
            var c = glob[i];
            if (c == '\\' && i + 1 < glob.Length)
            {
                regex.Append(Regex.Escape(glob[++i].ToString()));
            }
            else if (c == '*')
            {
                regex.Append(".*");
            }
            else if (c == '?')
            {
                regex.Append('.');
            }
            else
            {
                regex.Append(Regex.Escape(c.ToString()));
            }
        }

        return Regex.IsMatch(text, regex.Append('$').ToString(), RegexOptions.Singleline);
    }
}
