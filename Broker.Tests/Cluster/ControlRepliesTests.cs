using Broker.Cluster;
using NUnit.Framework;

namespace Broker.Tests.Cluster;

/// <summary>The control plane's table of requests waiting for replies: bounded, and each reply reaches its own waiter.</summary>
[TestFixture]
public sealed class ControlRepliesTests
{
    [Test]
    public async Task Past_the_limit_no_request_is_added_until_one_leaves_and_a_reply_completes_only_its_own_request()
    {
        var replies = new ControlReplies(limit: 2);
        Assert.That(replies.TryAdd(out var first, out var firstReply), Is.True);
        Assert.That(replies.TryAdd(out var second, out var secondReply), Is.True);

        Assert.That((replies.TryAdd(out _, out _), replies.Count), Is.EqualTo((false, 2)), ControlReplies.LimitName);

        replies.Complete(new ControlMessage { Kind = ControlMessage.Reply, Id = second, Found = true });
        Assert.That(((await secondReply).Found, firstReply.IsCompleted), Is.EqualTo((true, false)));
        replies.Remove(second);
        replies.Complete(new ControlMessage { Kind = ControlMessage.Reply, Id = second });
        Assert.That(replies.TryAdd(out var third, out _), Is.True, "room again");
        Assert.That((third, replies.Count), Is.EqualTo((3L, 2)));
        replies.Remove(first);
        replies.Remove(first);
        Assert.That(replies.Count, Is.EqualTo(1), "removing twice frees one place");
    }
}
