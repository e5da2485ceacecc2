using System.Net.WebSockets;

namespace Broker.Benchmarks.Load;

/// <summary>
/// The idle mode's client heart-beats (STOMP 1.2 "Heart-beating"), from one timer for every
/// connection: the connections are dealt into <see cref="Slots"/> groups by index, and every
/// interval / <see cref="Slots"/> one group sends its EOL, so each connection sends one per interval,
/// spread evenly over it, with no timer or task per connection.
/// </summary>
internal sealed class HeartbeatSender
{
    private const int Slots = 20;

    private readonly LoadConnection?[] _connections;
    private long _sent;
    private long _failed;

    /// <param name="connections">Filled in as connections become ready (after their SUBSCRIBE's RECEIPT); null entries are skipped.</param>
    public HeartbeatSender(LoadConnection?[] connections) => _connections = connections;

    public long Sent => Interlocked.Read(ref _sent);

    public long Failed => Interlocked.Read(ref _failed);

    public Task Loop { get; private set; } = Task.CompletedTask;

    private int _intervalMs;

    /// <summary>Starts the loop at the first interval one connection negotiated (later calls do nothing); 0 means none.</summary>
    public void Start(int intervalMs, CancellationToken cancellationToken)
    {
        if (intervalMs > 0 && Interlocked.CompareExchange(ref _intervalMs, intervalMs, 0) == 0)
        {
            Loop = RunAsync(TimeSpan.FromMilliseconds(intervalMs / (double)Slots), cancellationToken);
        }
    }

    private async Task RunAsync(TimeSpan tick, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(tick);
        var slot = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                for (var i = slot; i < _connections.Length; i += Slots)
                {
                    if (Volatile.Read(ref _connections[i]) is not { } connection)
                    {
                        continue;
                    }

                    try
                    {
                        await connection.SendHeartbeatAsync(cancellationToken);
                        _sent++;
                    }
                    catch (Exception e) when (e is IOException or WebSocketException or ObjectDisposedException)
                    {
                        // The server closed it; the check message counts it as not held.
                        _failed++;
                    }
                }

                slot = (slot + 1) % Slots;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }
}
