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

    public int Held => Volatile.Read(ref _held);

    public void Release() => _release.TrySetResult();

    public async ValueTask<StompAuthResult> AuthenticateAsync(StompConnectRequest request, CancellationToken cancellationToken)
    {
        if (request.Login == Immediate)
        {
            return StompAuthResult.Authenticated(Immediate);
        }

        Interlocked.Increment(ref _held);
        await _release.Task.ConfigureAwait(false);
        return acceptWhenReleased ? StompAuthResult.Authenticated(request.Login ?? "held") : StompAuthResult.Fail("held, then refused");
    }
}
