using System.Collections.Concurrent;
using Broker.Durability;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Broker.Tests.Cluster;

/// <summary>
/// One node's session store and user registry (the real Redis ones) with every write held until <see cref="Release"/>:
/// that node's write-behind reaches Redis only then, so a test can act in the window between CONNECTED and the
/// session's record being stored. Reads go through. <see cref="Holds"/> says whose write is waiting.
/// </summary>
internal sealed class HeldSessionWrites : ISessionStore, IUserRegistry
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<string, int> _waiting = new(StringComparer.Ordinal);
    private RedisSessionStore _inner = null!;

    /// <summary>Puts this in front of the node's <see cref="RedisSessionStore"/> (pass to <see cref="TestCluster.StartNodeAsync"/>).</summary>
    public void Install(IServiceCollection services)
    {
        services.RemoveAll<ISessionStore>();
        services.RemoveAll<IUserRegistry>();
        services.AddSingleton<ISessionStore>(Resolve);
        services.AddSingleton<IUserRegistry>(Resolve);
    }

    /// <summary>A write for <paramref name="sessionId"/> is waiting here.</summary>
    public bool Holds(string sessionId) => _waiting.ContainsKey(sessionId);

    public void Release() => _release.TrySetResult();

    public async ValueTask SaveAsync(SessionRecord record, CancellationToken cancellationToken = default)
    {
        await HoldAsync(record.Id, cancellationToken);
        await _inner.SaveAsync(record, cancellationToken);
    }

    public async ValueTask RegisterAsync(string principal, string sessionId, string node, CancellationToken cancellationToken = default)
    {
        await HoldAsync(sessionId, cancellationToken);
        await _inner.RegisterAsync(principal, sessionId, node, cancellationToken);
    }

    public ValueTask<SessionRecord?> FindByTokenHashAsync(ReadOnlyMemory<byte> tokenHash, CancellationToken cancellationToken = default) =>
        _inner.FindByTokenHashAsync(tokenHash, cancellationToken);

    public ValueTask<SessionRecord?> FindByIdAsync(string sessionId, CancellationToken cancellationToken = default) => _inner.FindByIdAsync(sessionId, cancellationToken);

    public ValueTask<bool> RemoveAsync(string sessionId, CancellationToken cancellationToken = default) => _inner.RemoveAsync(sessionId, cancellationToken);

    public ValueTask TouchAsync(string sessionId, DateTimeOffset lastSeen, CancellationToken cancellationToken = default) => _inner.TouchAsync(sessionId, lastSeen, cancellationToken);

    public ValueTask<int> RemoveExpiredAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default) => _inner.RemoveExpiredAsync(cutoff, cancellationToken);

    public ValueTask UnregisterAsync(string principal, string sessionId, CancellationToken cancellationToken = default) => _inner.UnregisterAsync(principal, sessionId, cancellationToken);

    public ValueTask<IReadOnlyList<UserSession>> GetSessionsAsync(string principal, CancellationToken cancellationToken = default) => _inner.GetSessionsAsync(principal, cancellationToken);

    private HeldSessionWrites Resolve(IServiceProvider services)
    {
        _inner = services.GetRequiredService<RedisSessionStore>();
        return this;
    }

    // Honours the write's own timeout: the node's write-behind fails it and retries, held again, until released.
    private async Task HoldAsync(string sessionId, CancellationToken cancellationToken)
    {
        _waiting.AddOrUpdate(sessionId, 1, (_, n) => n + 1);
        try
        {
            await _release.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            if (_waiting.AddOrUpdate(sessionId, 0, (_, n) => n - 1) == 0)
            {
                _waiting.TryRemove(new KeyValuePair<string, int>(sessionId, 0));
            }
        }
    }
}
