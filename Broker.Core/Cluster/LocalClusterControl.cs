using Broker.Durability;

namespace Broker.Cluster;

/// <summary>No cluster: there are no other nodes to ask, and away sessions are known only to the node they dropped on.</summary>
internal sealed class LocalClusterControl : IClusterControl
{
    public static readonly LocalClusterControl Instance = new();

    private LocalClusterControl()
    {
    }

    public bool IsEnabled => false;

    public Task<ControlAnswer> AskAsync(string node, ControlMessage request, CancellationToken cancellationToken = default) => Task.FromResult(ControlAnswer.None);

    public Task<IReadOnlyList<ControlAnswer>> AskEveryNodeAsync(ControlMessage request, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<ControlAnswer>>([]);

    public void Away(SessionRecord record)
    {
    }

    public void NotAway(string? principal, string sessionId)
    {
    }

    public Task<IReadOnlyList<AwayEntry>> AwayOfUserAsync(string login, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<AwayEntry>>([]);

    public Task<IReadOnlyList<AwayEntry>> TakeAwayBeyondAsync(string login, int max, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<AwayEntry>>([]);

    public Task<AwayClaim> ClaimAwayAsync(string login, string sessionId, CancellationToken cancellationToken = default) => Task.FromResult(AwayClaim.Unknown);

    public Task<bool?> TakeAwayAsync(string login, string sessionId, CancellationToken cancellationToken = default) => Task.FromResult<bool?>(null);

    public Task ReturnAwayAsync(string login, AwayEntry entry, CancellationToken cancellationToken = default) => Task.CompletedTask;

    public void NotEnded(string login, string sessionId)
    {
    }
}
