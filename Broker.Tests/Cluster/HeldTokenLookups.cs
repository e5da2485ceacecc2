using Broker.Durability;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Broker.Tests.Cluster;

/// <summary>
/// One node's session store (the real Redis one) whose lookup of one token, once <see cref="Hold"/> names it, reads the
/// record from Redis and then waits until <see cref="Release"/> before handing it back: a resume on that node has its
/// record in hand while a test acts on the session elsewhere. Everything else goes through. The wait ignores the
/// lookup's own timeout, so the resume goes on with the record it read, however long the test took.
/// </summary>
internal sealed class HeldTokenLookups : ISessionStore
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private RedisSessionStore _inner = null!;
    private byte[]? _held;
    private volatile bool _holding;
    private SessionRecord? _read;

    /// <summary>Puts this in front of the node's <see cref="RedisSessionStore"/> (pass to <see cref="TestCluster.StartNodeAsync"/>).</summary>
    public void Install(IServiceCollection services)
    {
        services.RemoveAll<ISessionStore>();
        services.AddSingleton<ISessionStore>(Resolve);
    }

    /// <summary>The next lookup of <paramref name="token"/>'s record waits, once it has read it, until <see cref="Release"/>.</summary>
    public void Hold(string token) => _held = Broker.Sessions.StompSession.HashToken(token);

    /// <summary>A lookup has read the held token's record and waits.</summary>
    public bool Holding => _holding;

    /// <summary>What the held lookup read from Redis (null: no record).</summary>
    public SessionRecord? Read => Volatile.Read(ref _read);

    public void Release() => _release.TrySetResult();

    public async ValueTask<SessionRecord?> FindByTokenHashAsync(ReadOnlyMemory<byte> tokenHash, CancellationToken cancellationToken = default)
    {
        var record = await _inner.FindByTokenHashAsync(tokenHash, cancellationToken);
        if (_held is { } held && tokenHash.Span.SequenceEqual(held))
        {
            Volatile.Write(ref _read, record);
            _holding = true;
            await _release.Task;
        }

        return record;
    }

    public ValueTask SaveAsync(SessionRecord record, CancellationToken cancellationToken = default) => _inner.SaveAsync(record, cancellationToken);

    public ValueTask<SessionRecord?> FindByIdAsync(string sessionId, CancellationToken cancellationToken = default) => _inner.FindByIdAsync(sessionId, cancellationToken);

    public ValueTask<bool> RemoveAsync(string sessionId, CancellationToken cancellationToken = default) => _inner.RemoveAsync(sessionId, cancellationToken);

    public ValueTask TouchAsync(string sessionId, DateTimeOffset lastSeen, CancellationToken cancellationToken = default) => _inner.TouchAsync(sessionId, lastSeen, cancellationToken);

    public ValueTask<int> RemoveExpiredAsync(DateTimeOffset cutoff, CancellationToken cancellationToken = default) => _inner.RemoveExpiredAsync(cutoff, cancellationToken);

    private HeldTokenLookups Resolve(IServiceProvider services)
    {
        _inner = services.GetRequiredService<RedisSessionStore>();
        return this;
    }
}
