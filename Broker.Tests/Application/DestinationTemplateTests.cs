using Broker.Application;
using NUnit.Framework;

namespace Broker.Tests.Application;

/// <summary>Destination templates: what matches, what a value is, and which of several templates wins.</summary>
[TestFixture]
public sealed class DestinationTemplateTests
{
    [TestCase("/app/chat/{room}", "/app/chat/general", true, "general")]
    [TestCase("/app/chat/{room}", "/app/chat/", false, null)]
    [TestCase("/app/chat/{room}", "/app/chat/a/b", false, null)]
    [TestCase("/app/chat/{room}", "/app/Chat/general", false, null)]
    [TestCase("/app/orders.{id}/status", "/app/orders.42/status", true, "42")]
    [TestCase("/app/orders.{id}/status", "/app/orders./status", false, null)]
    [TestCase("/app/{a}-x", "/app/y-x", true, "y")]
    [TestCase("/app/ping", "/app/ping", true, null)]
    [TestCase("/app/ping", "/app/ping/", false, null)]
    public void A_template_matches_whole_segments_and_a_value_is_never_empty(string template, string destination, bool matches, string? value)
    {
        var parsed = DestinationTemplate.Parse(template);

        Assert.That(parsed.TryMatch(destination, out var values), Is.EqualTo(matches));
        Assert.That(values.FirstOrDefault(), Is.EqualTo(value));
    }

    [TestCase("/app/chat/general", "literal")]
    [TestCase("/app/chat/x.5", "prefixed")]
    [TestCase("/app/chat/other", "parameter")]
    [TestCase("/app/chat/other/more", "deeper")]
    public async Task The_most_specific_template_wins_whatever_the_order_they_were_mapped_in(string destination, string expected)
    {
        foreach (var order in new[] { new[] { 0, 1, 2, 3 }, new[] { 3, 2, 1, 0 } })
        {
            var registry = new StompHandlerRegistry();
            var templates = new[] { ("/app/chat/{room}", "parameter"), ("/app/chat/x.{id}", "prefixed"), ("/app/chat/general", "literal"), ("/app/chat/{room}/more", "deeper") };
            foreach (var i in order)
            {
                var (text, name) = templates[i];
                registry.Add(new StompEndpoint(DestinationTemplate.Parse(text), StompHandlerKind.Message, _ => new ValueTask<object?>(name)));
            }

            var found = registry.Match(StompHandlerKind.Message, destination, out _);

            Assert.That(found is null ? null : await found.Invoke(null!), Is.EqualTo(expected));
        }
    }
}
