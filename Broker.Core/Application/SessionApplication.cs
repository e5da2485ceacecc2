using System.Diagnostics;
using System.Security.Claims;
using System.Text.Json;
using Broker.Protocol;
using Broker.Routing;
using Broker.Sessions;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Application;

/// <summary>
/// One session's side of the application API, made when it is connected: the principal handlers see, and the handlers
/// it runs. Handlers run on the thread pool, off the read loop, at most <see cref="StompApplicationOptions.MaxConcurrentHandlersPerSession"/>
/// at a time; past that the read loop waits for a slot (back-pressure on this client only: its deliveries and every
/// other session go on). When the session closes, <see cref="Aborted"/> is cancelled.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001", Justification = "The token source has no timer and its wait handle is never made: it holds nothing to release, and handlers may still read its token after the session closed.")]
internal sealed class SessionApplication
{
    private readonly StompSession _session;
    private readonly StompApplication _application;
    private readonly CancellationTokenSource _closing = new();
    private readonly Lock _gate = new();
    private SemaphoreSlim? _slots;
    private int _running;
    private TaskCompletionSource? _idle;

    public SessionApplication(StompSession session, StompApplication application, ClaimsPrincipal principal)
    {
        _session = session;
        _application = application;
        Principal = principal;
    }

    public ClaimsPrincipal Principal { get; }

    /// <summary>Cancelled once the session starts closing.</summary>
    public CancellationToken Aborted => _closing.Token;

    /// <summary>Handlers running now.</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>Called when the session starts closing (from whatever thread closes it): running handlers see <see cref="Aborted"/>.</summary>
    public void Closing()
    {
        if (!_closing.IsCancellationRequested)
        {
            // Registered callbacks (the handlers' own) run off this thread.
            _ = _closing.CancelAsync();
        }
    }

    /// <summary>Runs <paramref name="work"/> off the read loop; waits (asynchronously) for a free slot first.</summary>
    public ValueTask RunAsync(InboundWork work)
    {
        // Only the read loop starts handlers, so the slots are made once without a race.
        var slots = _slots ??= new SemaphoreSlim(_application.Options.MaxConcurrentHandlersPerSession, _application.Options.MaxConcurrentHandlersPerSession);
        if (slots.Wait(0))
        {
            Start(work);
            return ValueTask.CompletedTask;
        }

        return WaitThenStartAsync(slots, work);
    }

    /// <summary>Completes when no handler runs (or <paramref name="timeout"/> passed).</summary>
    public Task WhenIdleAsync(TimeSpan timeout)
    {
        Task idle;
        lock (_gate)
        {
            if (_running == 0)
            {
                return Task.CompletedTask;
            }

            idle = (_idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }

        return idle.WaitAsync(timeout).ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private async ValueTask WaitThenStartAsync(SemaphoreSlim slots, InboundWork work)
    {
        await slots.WaitAsync(Aborted).ConfigureAwait(false);
        Start(work);
    }

    private void Start(InboundWork work)
    {
        lock (_gate)
        {
            _running++;
        }

        _ = Task.Run(() => HandleAsync(work), CancellationToken.None);
    }

    private async Task HandleAsync(InboundWork work)
    {
        var started = Stopwatch.GetTimestamp();
        var kind = work.Endpoint.Kind;
        try
        {
            var scope = _application.ScopeFactory.CreateAsyncScope();
            await using (scope.ConfigureAwait(false))
            {
                var context = new StompMessageContext(work, _session.Id, _session.Principal, Principal, scope.ServiceProvider, _application.Options.JsonSerializerOptions, Aborted);
                var result = await work.Endpoint.Invoke(context).ConfigureAwait(false);
                if (result is not null && !Aborted.IsCancellationRequested)
                {
                    await work.Reply.SendAsync(StompPayload.From(result, _application.Options.JsonSerializerOptions), Aborted).ConfigureAwait(false);
                }
            }

            _application.Metrics.Handled(kind, "ok", started);
        }
        catch (Exception ex) when (Aborted.IsCancellationRequested && ex is OperationCanceledException)
        {
            // The session closed under the handler: nobody to tell.
            _application.Metrics.Handled(kind, "aborted", started);
        }
        catch (Exception ex)
        {
            _application.Metrics.Handled(kind, "failed", started);
            await ReportAsync(work, ex).ConfigureAwait(false);
        }
        finally
        {
            // STOMP 1.2 "RECEIPT": for an application destination, sent once its handler completed.
            if (work.Receipt is { } receipt && !Aborted.IsCancellationRequested)
            {
                _session.SendReceipt(receipt);
            }

            _slots!.Release();
            lock (_gate)
            {
                if (--_running == 0 && _idle is { } idle)
                {
                    _idle = null;
                    idle.TrySetResult();
                }
            }
        }
    }

    // The sender learns of a failed handler on /user/queue/errors: the message of a StompApplicationException (written
    // for it), or for anything else only the exception's type and a fixed text; never a stack trace. The error is logged.
    private async Task ReportAsync(InboundWork work, Exception exception)
    {
        string message;
        if (exception is StompApplicationException refused)
        {
            message = refused.Message;
            ApplicationLog.HandlerRefused(_application.Logger, _session.Id, work.Destination, message);
        }
        else
        {
            message = $"the handler for '{work.Destination}' failed";
            ApplicationLog.HandlerFailed(_application.Logger, exception, _session.Id, work.Destination);
        }

        if (Aborted.IsCancellationRequested)
        {
            return;
        }

        try
        {
            var body = JsonSerializer.SerializeToUtf8Bytes(new HandlerError(work.Destination, exception.GetType().Name, message), _application.Options.JsonSerializerOptions);
            await work.Errors.SendAsync(StompPayload.Bytes(body, StompPayload.JsonContentType).WithHeader("message", message), Aborted).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !Aborted.IsCancellationRequested)
        {
            ApplicationLog.ErrorReportFailed(_application.Logger, ex, _session.Id, work.Destination);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>The body of a MESSAGE on <c>/user/queue/errors</c>.</summary>
    private sealed record HandlerError(string Destination, string Error, string Message);
}
