using Broker.Durability;

namespace Broker.Cluster;

/// <summary>
/// The cluster's control plane: requests to the node that holds a session (end it, end a user's sessions, hand it
/// over, describe a user's sessions), answered within a timeout, and the directory of durable sessions that dropped
/// and may resume (for user destinations sent from other nodes). <see cref="LocalClusterControl"/> when there is no
/// shared Redis; <see cref="RedisClusterControl"/> over Redis pub/sub with <c>Broker:Cluster:Kind=redis</c> or a Redis
/// session store (the relay shape, or Redis sessions alone).
/// </summary>
internal interface IClusterControl
{
    /// <summary>True once other nodes can be asked (the cluster is on and this node listens).</summary>
    bool IsEnabled { get; }

    /// <summary>Sends <paramref name="request"/> to <paramref name="node"/> and waits for its reply, never longer than the control timeout.</summary>
    Task<ControlAnswer> AskAsync(string node, ControlMessage request, CancellationToken cancellationToken = default);

    /// <summary>
    /// Sends <paramref name="request"/> once to every other node that takes control requests now (for a session no record
    /// names yet) and waits for their answers, each within the control timeout. Broadcasts together hold at most a
    /// quarter of <c>cluster-control-pending</c>, so they cannot starve take-overs and <c>max-sessions-per-user</c>;
    /// past that, or when the nodes are unknown, none is sent (empty).
    /// </summary>
    Task<IReadOnlyList<ControlAnswer>> AskEveryNodeAsync(ControlMessage request, CancellationToken cancellationToken = default);

    /// <summary>A durable session of this node dropped and may resume anywhere until its TTL passes (write-behind).</summary>
    void Away(SessionRecord record);

    /// <summary>A session is no longer away: it resumed, or ended for good (write-behind).</summary>
    void NotAway(string? principal, string sessionId);

    /// <summary>The user's durable sessions that dropped on any node and may still resume; empty when unknown.</summary>
    Task<IReadOnlyList<AwayEntry>> AwayOfUserAsync(string login, CancellationToken cancellationToken = default);

    /// <summary>
    /// Takes the user's oldest away sessions beyond <paramref name="max"/> (on all nodes together, by when they went away)
    /// out of the directory, at once, so that each is handed to one caller only; oldest first. Empty when the user has at
    /// most <paramref name="max"/>, or when unknown.
    /// </summary>
    Task<IReadOnlyList<AwayEntry>> TakeAwayBeyondAsync(string login, int max, CancellationToken cancellationToken = default);

    /// <summary>
    /// A resume of the user's session claims it from the away directory before restoring it (whoever removes the entry
    /// owns the session): <see cref="AwayClaim.Ended"/> when <see cref="TakeAwayBeyondAsync"/> took it first.
    /// </summary>
    Task<AwayClaim> ClaimAwayAsync(string login, string sessionId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Takes one of the user's sessions out of the directory to end it, as <see cref="TakeAwayBeyondAsync"/> does: true
    /// when taken, false when it was not there (a resume claimed it, or another node took it), null when unknown.
    /// </summary>
    Task<bool?> TakeAwayAsync(string login, string sessionId, CancellationToken cancellationToken = default);

    /// <summary>Puts back an entry <see cref="TakeAwayBeyondAsync"/> took but that could not be ended (the session resumes again).</summary>
    Task ReturnAwayAsync(string login, AwayEntry entry, CancellationToken cancellationToken = default);

    /// <summary>Lifts the ended marker of a session <see cref="TakeAwayBeyondAsync"/> took that turned out connected (write-behind).</summary>
    void NotEnded(string login, string sessionId);
}

/// <summary>What a resume's claim on the away directory found.</summary>
internal enum AwayClaim
{
    /// <summary>The entry (if any) is removed: the resume owns the session.</summary>
    Claimed,

    /// <summary>The session was taken past <c>max-away-sessions-per-user</c> and is being ended: the resume gives up (<c>resumed:false</c>).</summary>
    Ended,

    /// <summary>No directory, or Redis did not answer: the resume goes on (the entry is removed write-behind).</summary>
    Unknown,
}

/// <summary>How a control request ended.</summary>
internal enum ControlOutcome
{
    /// <summary>The node replied (<see cref="ControlAnswer.Reply"/>).</summary>
    Answered,

    /// <summary>No node listens on its channel: it is down. The caller acts for it (deletes the record).</summary>
    NodeGone,

    /// <summary>No reply within the control timeout, Redis unreachable, or too many requests pending. The caller falls back.</summary>
    NoAnswer,
}

/// <summary>The outcome of a control request and, when answered, the reply.</summary>
internal readonly record struct ControlAnswer(ControlOutcome Outcome, ControlMessage? Reply)
{
    public static ControlAnswer Gone => new(ControlOutcome.NodeGone, null);

    public static ControlAnswer None => new(ControlOutcome.NoAnswer, null);

    public bool Found => Outcome == ControlOutcome.Answered && Reply is { Found: true };
}

/// <summary>A durable session away from its connection: which node saw it last and its <c>/user/queue/</c> subscriptions.</summary>
internal sealed record AwayEntry(string SessionId, string Node, string[] UserDestinations, long ExpiresAt = 0);
