namespace Broker.Tests;

/// <summary>
/// Waits for something a test cannot be told about (a session let go, a key expired, a queue deleted): polls
/// the condition until it holds, and fails with <paramref name="what"/> when it does not within the timeout.
/// The one polling helper of the tests; await an event instead wherever there is one.
/// </summary>
public static class Eventually
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(10);

    /// <summary>A longer wait, for what crosses processes or an external server (RabbitMQ, Redis, another node).</summary>
    public static readonly TimeSpan Relaxed = TimeSpan.FromSeconds(20);

    /// <summary>Waits until <paramref name="condition"/> holds; throws <see cref="TimeoutException"/> naming <paramref name="what"/> when it does not within <paramref name="timeout"/> (default <see cref="StompTestClient.DefaultTimeout"/>).</summary>
    public static Task That(Func<bool> condition, string what, TimeSpan? timeout = null) =>
        That(() => Task.FromResult(condition()), what, timeout);

    /// <inheritdoc cref="That(Func{bool}, string, TimeSpan?)"/>
    public static async Task That(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? StompTestClient.DefaultTimeout);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{what}: not within {(timeout ?? StompTestClient.DefaultTimeout).TotalSeconds:0.#} s");
            }

            await Task.Delay(PollInterval);
        }
    }
}
