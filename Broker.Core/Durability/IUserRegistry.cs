namespace Broker.Durability;

/// <summary>user → live sessions → node. Cluster-wide when backed by Redis.</summary>
public interface IUserRegistry
{
    ValueTask RegisterAsync(string principal, string sessionId, string node, CancellationToken cancellationToken = default);

    ValueTask UnregisterAsync(string principal, string sessionId, CancellationToken cancellationToken = default);

    ValueTask<IReadOnlyList<UserSession>> GetSessionsAsync(string principal, CancellationToken cancellationToken = default);
}

/// <summary>A live session of a user, and the node serving it.</summary>
public sealed record UserSession(string SessionId, string Node);
