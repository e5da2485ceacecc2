using Broker.Resources;

namespace Broker.Sessions;

// What a session holds for its client, counted against the memory budget (its outbox counts itself), and flow
// control: while the budget is above its high watermark, a connection that SENDs is not read from after its SEND
// until memory falls below the low watermark. Its TCP window fills and nothing is lost; a connection that only
// consumes keeps being read and written, and its writer loop draining the outbox is what lowers the budget.
public sealed partial class StompSession
{
    // Called by the read loop after a SEND, when the budget is above its high watermark. False: the session is
    // closing (it was closed meanwhile, or it waited past FlowControlTimeout and got the memory-limit ERROR).
    private async ValueTask<bool> AwaitMemoryAsync()
    {
        var memory = _services.Memory;
        var below = memory.WhenBelowLowWatermark();
        if (below.IsCompleted)
        {
            return true;
        }

        var timeout = _options.FlowControlTimeout;
        using var stopTimer = new CancellationTokenSource();

        // The timeout runs from before the publisher is counted as blocked: whoever sees it blocked (a metric, a test
        // moving a fake clock) sees its timeout already running.
        var timedOut = timeout > TimeSpan.Zero ? Task.Delay(timeout, _keepAlive.Time, stopTimer.Token) : null;
        using var blocked = memory.Block();
        _flowControlled = true;
        try
        {
            var closing = ClosingSignal();
            await (timedOut is not null ? Task.WhenAny(below, closing, timedOut) : Task.WhenAny(below, closing)).ConfigureAwait(false);
            if (below.IsCompleted && !IsClosing)
            {
                return true;
            }

            if (!IsClosing)
            {
                Fail(LimitExceededException.MemoryLimit(timeout), receiptId: null);
            }

            return false;
        }
        finally
        {
            await stopTimer.CancelAsync().ConfigureAwait(false);
            _flowControlled = false;
            // Not hearing from a client we did not read from is no sign that it is gone.
            Volatile.Write(ref _lastReadAt, _keepAlive.NowMs());
        }
    }

    // Completed once the session is closing (BeginClose completes it), made only for a session that waits.
    private Task ClosingSignal()
    {
        if (Volatile.Read(ref _closingSignal) is not { } signal)
        {
            Interlocked.CompareExchange(ref _closingSignal, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), null);
            signal = Volatile.Read(ref _closingSignal)!;
        }

        if (IsClosing)
        {
            signal.TrySetResult();
        }

        return signal.Task;
    }

    // After each read: the bytes of a frame not yet whole, which the connection holds until the rest arrives.
    private void CountPartialFrame()
    {
        var partial = _reader.PartialFrameBytes;
        if (partial != _partialFrameBytes)
        {
            _services.Memory.Add(MemoryComponent.PartialFrames, partial - _partialFrameBytes);
            _partialFrameBytes = partial;
        }
    }

    // A SEND, ACK or NACK held by an open transaction until COMMIT or ABORT (max-transaction-bytes was checked before).
    private void HoldForTransaction(TransactionAction action)
    {
        _transactionBytes += action.Size;
        _services.Memory.Add(MemoryComponent.Transactions, action.Size);
    }

    // A transaction committed or aborted: what it held goes back, from max-transaction-bytes and from the budget.
    private void ReleaseTransaction(List<TransactionAction> actions)
    {
        var size = 0L;
        foreach (var action in actions)
        {
            size += action.Size;
        }

        _transactionBytes -= size;
        _services.Memory.Subtract(MemoryComponent.Transactions, size);
    }

    // The session has ended (its read loop and writer loop are done): give back all it held.
    private void ReleaseMemory()
    {
        _outbox.Discard();
        _services.Memory.Subtract(MemoryComponent.Transactions, _transactionBytes);
        _transactionBytes = 0;
        _services.Memory.Subtract(MemoryComponent.PartialFrames, _partialFrameBytes);
        _partialFrameBytes = 0;
    }
}
