using Broker.Sessions;

namespace Broker.Tests;

/// <summary>
/// Lets <see cref="Immediate"/> in at once and holds everyone else's CONNECT until <see cref="Release"/>: then it
/// accepts them (<paramref name="acceptWhenReleased"/>) or refuses them. <see cref="Held"/> counts the CONNECTs it holds.
/// </summary>
internal sealed class HeldAuthenticator(bool acceptWhenReleased = false) : IStompAuthenticator
{
    public const string Immediate = "bystander";

    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _held;
    private int _canceled;

    public int Held => Volatile.Read(ref _held);

    /// <summary>Held CONNECTs whose cancellation token the server canceled (the connection closed meanwhile).</summary>
    public int Canceled => Volatile.Read(ref _canceled);

    public void Release() => _release.TrySetResult();

    public async ValueTask<StompAuthResult> AuthenticateAsync(StompConnectRequest request, CancellationToken cancellationToken)
    {
        if (request.Login == Immediate)
        {
            return StompAuthResult.Authenticated(Immediate);
        }

        Interlocked.Increment(ref _held);
        using var _ = cancellationToken.Register(() => Interlocked.Increment(ref _canceled));

        // Deaf to the token, like an authenticator stuck in a call that takes none: the server must wait for it anyway.
        await _release.Task.ConfigureAwait(false);
        return acceptWhenReleased ? StompAuthResult.Authenticated(request.Login ?? "held") : StompAuthResult.Fail("held, then refused");
    }
}
