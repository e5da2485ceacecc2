using Broker.Routing;
using Broker.Security;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace Broker.Tests.Security;

[TestFixture]
public sealed class DestinationPatternTests
{
    private static readonly List<string> s_keys = PatternReference.AllKeys(5);

    [TestCase("/topic/admin.#", "/topic/admin", true)]
    [TestCase("/topic/admin.#", "/topic/admin.x.y", true)]
    [TestCase("/topic/admin.#", "/topic/administrator", false)]
    [TestCase("/topic/admin.*", "/topic/admin.x", true)]
    [TestCase("/topic/admin.*", "/topic/admin.x.y", false)]
    [TestCase("/topic/admin.*", "/topic/admin", false)]
    [TestCase("/topic/#.eu", "/topic/eu", true)]
    [TestCase("/topic/#.eu", "/topic/prices.fx.eu", true)]
    [TestCase("/queue/jobs.*", "/queue/jobs.a", true)]
    [TestCase("/queue/jobs.*", "/queue/jobs/a", false)]
    [TestCase("/user/bob/#", "/user/bob/queue/x", true)]
    [TestCase("/user/bob/#", "/user/bob", true)]
    [TestCase("/user/bob/#", "/user/bob.smith/queue/x", false)]
    [TestCase("/user/*/queue/#", "/user/alice/queue/inbox", true)]
    [TestCase("/app/#", "/app/chat.send", true)]
    [TestCase("#", "/anything/at.all", true)]
    [TestCase("/topic/a*", "/topic/ab", false)]
    [TestCase("/topic/a*", "/topic/a*", true)]
    [TestCase("a.#/b", "a.b", true)]
    [TestCase("a.#/b", "a/b", false)]
    [TestCase("a.#.#.b", "a.b", true)]
    public void Matches_destinations_word_by_word(string pattern, string destination, bool expected) =>
        Assert.That(DestinationPattern.Parse(pattern).Matches(destination), Is.EqualTo(expected));

    [TestCase("/topic/#", "/topic/admin.*", true, true)]
    [TestCase("/topic/admin.*", "/topic/#", true, false)]
    [TestCase("/topic/#", "/topic/public.#", true, true)]
    [TestCase("/topic/admin.*", "/topic/public.#", false, false)]
    [TestCase("/topic/*.x", "/topic/a.*", true, false)]
    [TestCase("/topic/#.x", "/topic/a.#", true, false)]
    [TestCase("/topic/a.#", "/topic/a.#.b", true, true)]
    [TestCase("/topic/*.#", "/topic/#.*", true, false)]
    public void Overlaps_and_covers(string rule, string subscription, bool overlaps, bool covers)
    {
        var r = DestinationPattern.Parse(rule);
        var p = DestinationPattern.Parse(subscription);
        Assert.That(r.Overlaps(p), Is.EqualTo(overlaps), "overlaps");
        Assert.That(p.Overlaps(r), Is.EqualTo(overlaps), "overlaps, the other way round");
        Assert.That(r.Covers(p), Is.EqualTo(covers), $"{rule} covers {subscription}");
    }

    [Test]
    public void A_rule_pattern_longer_than_the_limit_is_refused_with_its_name()
    {
        var pattern = string.Join('.', Enumerable.Repeat("w", DestinationPattern.MaxWords + 1));
        Assert.That(() => DestinationPattern.Parse(pattern), Throws.TypeOf<FormatException>().With.Message.Contains("max-rule-pattern-words"));
    }

    [Test]
    public void A_topic_subscription_star_takes_a_word_that_holds_a_slash()
    {
        // The broker splits topic keys at '.' only: /topic/* receives /topic/admin/x. The rule space sees two words.
        var subscription = DestinationPattern.ForSubscription("/topic/*");
        Assert.That(subscription.Overlaps(DestinationPattern.Parse("/topic/admin/*")), Is.True);
        Assert.That(new TopicPattern("*").Matches("admin/x"), Is.True, "what the broker does");
    }

    [FsCheck.NUnit.Property(MaxTest = 300, Arbitrary = [typeof(PatternArbitraries)])]
    public bool Matches_agrees_with_the_reference(TestPattern pattern)
    {
        var compiled = pattern.Compile();
        return s_keys.TrueForAll(key => compiled.Matches(key) == PatternReference.Matches(pattern, key));
    }

    [FsCheck.NUnit.Property(MaxTest = 300, Arbitrary = [typeof(PatternArbitraries)])]
    public Property Overlaps_is_exact(TestPattern a, TestPattern b)
    {
        var witness = s_keys.Find(key => PatternReference.Matches(a, key) && PatternReference.Matches(b, key));
        var overlaps = a.Compile().Overlaps(b.Compile());
        return (overlaps == (witness is not null)).Label($"overlaps says {overlaps}, common key: {witness ?? "none up to 5 words"}");
    }

    [FsCheck.NUnit.Property(MaxTest = 300, Arbitrary = [typeof(PatternArbitraries)])]
    public Property Covers_is_exact(TestPattern covering, TestPattern covered)
    {
        var outside = s_keys.Find(key => PatternReference.Matches(covered, key) && !PatternReference.Matches(covering, key));
        var covers = covering.Compile().Covers(covered.Compile());
        return (covers == (outside is null)).Label($"covers says {covers}, key of {covered} outside {covering}: {outside ?? "none up to 5 words"}");
    }

    [FsCheck.NUnit.Property(MaxTest = 300)]
    public Property A_wildcard_subscription_is_read_as_at_least_what_the_broker_delivers()
    {
        var dotWords = Gen.Elements("a", "b", "a/b", "b/", "*", "#");
        var keyWords = Gen.Elements("a", "b", "c", "a/b", "b/c", "b/");
        var topic = from n in Gen.Choose(1, 4) from words in Gen.ArrayOf(dotWords, n) select string.Join('.', words);
        var keys = from n in Gen.Choose(1, 4) from words in Gen.ArrayOf(keyWords, n) select string.Join('.', words);
        return Prop.ForAll(topic.ToArbitrary(), Gen.ArrayOf(keys, 40).ToArbitrary(), (pattern, samples) =>
        {
            var subscription = DestinationPattern.ForSubscription("/topic/" + pattern);
            var routing = new TopicPattern(pattern);
            var missed = samples.FirstOrDefault(key => routing.Matches(key) && !subscription.Matches("/topic/" + key));
            return (missed is null).Label($"/topic/{pattern} receives /topic/{missed}, which its rule-space reading does not match");
        });
    }
}
