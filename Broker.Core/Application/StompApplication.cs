using System.Buffers;
using System.Security.Claims;
using System.Text;
using Broker.Durability;
using Broker.Protocol;
using Broker.Routing;
using Broker.Sessions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Application;

/// <summary>
/// Where the session engine calls the application API (each hook in the StompSession partials is one call here):
/// <c>/app/...</c> destinations to their handlers, inbound interceptors, session events, the per-user session limit.
/// A DI singleton shared by every session; observers and interceptors are resolved on first use, so they may depend
/// on <see cref="IStompMessenger"/> and <see cref="IStompSessionControl"/>.
/// </summary>
internal sealed class StompApplication
{
    private const string RepliesQueue = "replies";
    private const string ErrorsQueue = "errors";

    private readonly StompHandlerRegistry _handlers;
    private readonly DurableSessionOptions _sessionOptions;
    private readonly IServiceProvider _services;
    private readonly string _prefixSlash;
    private IStompSessionObserver[]? _observers;
    private IStompInterceptor[]? _interceptors;

    public StompApplication(
        StompHandlerRegistry handlers,
        IOptions<StompApplicationOptions> options,
        IOptions<DurableSessionOptions> sessionOptions,
        IServiceProvider services,
        AwaySessions away,
        ApplicationMetrics metrics,
        ILoggerFactory loggerFactory)
    {
        _handlers = handlers;
        Options = options.Value;
        _sessionOptions = sessionOptions.Value;
        _services = services;
        Away = away;
        Metrics = metrics;
        Logger = loggerFactory.CreateLogger("Broker.Application");
        ScopeFactory = services.GetRequiredService<IServiceScopeFactory>();
        _prefixSlash = Prefix(Options) + "/";
        away.Expired = info => Notify(info.Id, nameof(IStompSessionObserver.OnExpired), o => o.OnExpired(info));
    }

    public StompApplicationOptions Options { get; }

    public ApplicationMetrics Metrics { get; }

    public ILogger Logger { get; }

    public IServiceScopeFactory ScopeFactory { get; }

    public AwaySessions Away { get; }

    private IStompSessionObserver[] Observers => _observers ??= [.. _services.GetServices<IStompSessionObserver>()];

    private IStompInterceptor[] Interceptors => _interceptors ??= [.. _services.GetServices<IStompInterceptor>()];

    /// <summary>The configured prefix without a trailing slash (<c>/app</c>).</summary>
    public static string Prefix(StompApplicationOptions options) => options.DestinationPrefix.TrimEnd('/');

    /// <summary>True for a destination under the application prefix: application code handles it, not the broker.</summary>
    public bool IsApplicationDestination(string destination) => destination.StartsWith(_prefixSlash, StringComparison.Ordinal);

    /// <summary>For a SEND to an application destination: an error naming it when no handler maps it.</summary>
    public string? ValidateSend(string destination) =>
        _handlers.Match(StompHandlerKind.Message, destination, out _) is null ? $"no application handler for '{Printable(destination)}'" : null;

    /// <summary>For a SUBSCRIBE to an application destination: an error naming it when no subscription handler maps it.</summary>
    public string? ValidateSubscribe(string destination) =>
        _handlers.Match(StompHandlerKind.Subscription, destination, out _) is null ? $"no application subscription for '{Printable(destination)}'" : null;

    /// <summary>Runs the interceptors on a SUBSCRIBE, SEND or UNSUBSCRIBE; a refusal becomes the ERROR that names it.</summary>
    public void Intercept(StompSession session, StompFrame frame, string? destination)
    {
        var interceptors = Interceptors;
        if (interceptors.Length == 0)
        {
            return;
        }

        var inbound = new StompInboundFrame(frame, destination, session.Id, session.Principal, session.Application?.Principal ?? PrincipalOf(session));
        foreach (var interceptor in interceptors)
        {
            StompInterceptResult result;
            try
            {
                result = interceptor.OnInbound(inbound);
            }
            catch (Exception ex)
            {
                ApplicationLog.InterceptorFailed(Logger, ex, interceptor.GetType().Name, inbound.Command.ToString(), session.Id);
                throw new StompProtocolException($"{inbound.Command.ToString().ToUpperInvariant()} refused: the server could not check it");
            }

            if (result.Rejection is { } rejection)
            {
                ApplicationLog.InterceptorRefused(Logger, session.Id, inbound.Command.ToString(), interceptor.GetType().Name, rejection);
                throw new StompProtocolException(rejection);
            }
        }
    }

    /// <summary>An authenticated CONNECT, before its session is set up: interceptors, then <c>max-sessions-per-user</c>.</summary>
    public ValueTask ConnectingAsync(StompSession session, StompFrame frame)
    {
        Intercept(session, frame, destination: null);
        return _sessionOptions.MaxPerUser > 0 && session.Principal is not null ? EnforceMaxPerUserAsync(session, frame) : ValueTask.CompletedTask;
    }

    /// <summary>CONNECTED is queued: the session's application side, and OnConnected or OnResumed.</summary>
    public SessionApplication Connected(StompSession session, bool resumed, bool recovered)
    {
        var application = new SessionApplication(session, this, PrincipalOf(session));
        if (resumed)
        {
            Away.Remove(session.Id, out _);
        }

        if (Observers.Length > 0)
        {
            var info = session.Describe();
            if (resumed)
            {
                Notify(session.Id, nameof(IStompSessionObserver.OnResumed), o => o.OnResumed(info, recovered));
            }
            else
            {
                Notify(session.Id, nameof(IStompSessionObserver.OnConnected), o => o.OnConnected(info));
            }
        }

        return application;
    }

    /// <summary>A SEND to a mapped application destination: to its handler, off the read loop; the RECEIPT follows the handler.</summary>
    public ValueTask DispatchSendAsync(StompSession session, StompFrame frame, string destination, string? receipt)
    {
        if (frame.HasHeader(StompHeaders.Transaction))
        {
            throw new StompProtocolException($"a SEND to application destination '{destination}' cannot be part of a transaction");
        }

        var endpoint = _handlers.Match(StompHandlerKind.Message, destination, out var values)
            ?? throw new StompProtocolException($"no application handler for '{Printable(destination)}'");
        var replyQueue = RepliesQueue;
        if (frame.GetString("reply-to"u8) is { } replyTo && !TryOwnUserQueue(replyTo, out replyQueue))
        {
            throw new StompProtocolException($"reply-to '{Printable(replyTo)}' must be one of your own user destinations, /user/queue/<name>");
        }

        var correlationId = frame.GetString("correlation-id"u8);
        var work = new InboundWork(endpoint, destination, values, CopyHeaders(frame), frame.Body.ToArray(), receipt, SubscriptionId: null,
            new SessionQueueReply(session, replyQueue, correlationId, this), new SessionQueueReply(session, ErrorsQueue, correlationId, this));
        return session.Application!.RunAsync(work);
    }

    /// <summary>
    /// A SUBSCRIBE to a mapped application destination (the subscription is filed, with no broker behind it): its
    /// handler's result goes once to that subscription (Spring's <c>@SubscribeMapping</c>); the RECEIPT follows it.
    /// </summary>
    public ValueTask SubscribeAsync(StompSession session, SessionSubscription subscription, StompFrame frame, string? receipt)
    {
        var endpoint = _handlers.Match(StompHandlerKind.Subscription, subscription.Destination, out var values)
            ?? throw new StompProtocolException($"no application subscription for '{Printable(subscription.Destination)}'");
        Subscribed(session, subscription);
        var work = new InboundWork(endpoint, subscription.Destination, values, CopyHeaders(frame), ReadOnlyMemory<byte>.Empty, receipt, subscription.Id,
            new SubscriptionReply(session, subscription), new SessionQueueReply(session, ErrorsQueue, null, this));
        return session.Application!.RunAsync(work);
    }

    public void Subscribed(StompSession session, SessionSubscription subscription)
    {
        if (Observers.Length > 0)
        {
            var change = new StompSubscriptionEvent(session.Id, session.Principal, new StompSubscriptionInfo(subscription.Id, subscription.Destination));
            Notify(session.Id, nameof(IStompSessionObserver.OnSubscribed), o => o.OnSubscribed(change));
        }
    }

    public void Unsubscribed(StompSession session, SessionSubscription subscription)
    {
        if (Observers.Length > 0)
        {
            var change = new StompSubscriptionEvent(session.Id, session.Principal, new StompSubscriptionInfo(subscription.Id, subscription.Destination));
            Notify(session.Id, nameof(IStompSessionObserver.OnUnsubscribed), o => o.OnUnsubscribed(change));
        }
    }

    /// <summary>
    /// The connection closed and the session let go (its final state handed to the store): OnDisconnected, once, for a
    /// session that was connected; a durable session that may resume is watched for expiry.
    /// </summary>
    public void Closed(StompSession session, CloseReason reason)
    {
        if (session.Application is null)
        {
            return; // never connected: nothing was announced
        }

        var info = session.Describe();
        if (session.IsResumableAfterClose && session.FinalState is { } record)
        {
            var owner = AwaySessions.OwnerOf(session.Principal, session.RemoteAddress);
            if (Away.Add(record, info, owner) is { } over)
            {
                if (over.Record.Principal is not null && reason != CloseReason.ServerShutdown && session.Services.Cluster.IsEnabled)
                {
                    // A shared away directory decides: the session may have resumed on another node since it dropped here.
                    _ = session.Services.ClusterSessions.EndAwayPastLocalLimitAsync(over, owner);
                }
                else
                {
                    // Past max-away-sessions-per-user: the owner's oldest away session goes for good (then counted, so
                    // whoever sees the count sees its token refused).
                    StompSessionControl.Forget(session.Services, over.Record);
                    Away.OwnerLimitExceeded(over, owner);
                }
            }

            // With a shared away directory (Redis), the limit holds for the user's away sessions on all nodes together.
            // Not at shutdown: every durable session closes then, and the check would outlive the store's writer.
            if (session.Principal is { } login && reason != CloseReason.ServerShutdown && session.Services.Cluster.IsEnabled && _sessionOptions.MaxAwayPerUser > 0)
            {
                _ = session.Services.ClusterSessions.EndAwayBeyondLimitAsync(login);
            }
        }

        Notify(session.Id, nameof(IStompSessionObserver.OnDisconnected), o => o.OnDisconnected(info, DisconnectReason(reason)));
    }

    public static StompDisconnectReason DisconnectReason(CloseReason reason) => reason switch
    {
        CloseReason.Disconnect => StompDisconnectReason.ClientDisconnect,
        CloseReason.Error => StompDisconnectReason.Error,
        CloseReason.Timeout => StompDisconnectReason.TimedOut,
        CloseReason.SlowConsumer => StompDisconnectReason.SlowConsumer,
        CloseReason.TakenOver => StompDisconnectReason.TakenOver,
        CloseReason.PeerGone => StompDisconnectReason.Dropped,
        CloseReason.ServerShutdown => StompDisconnectReason.ServerShutdown,
        _ => StompDisconnectReason.ClosedByServer,
    };

    /// <summary>
    /// The principal handlers and interceptors see: the WebSocket request's authenticated user when it is the session's,
    /// else one made from the STOMP login, else an unauthenticated one.
    /// </summary>
    public static ClaimsPrincipal PrincipalOf(StompSession session)
    {
        if (session.TransportUser is { Identity: { IsAuthenticated: true, Name: { } name } } user && name == session.Principal)
        {
            return user;
        }

        return session.Principal is { } login
            ? new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, login)], "STOMP", ClaimTypes.Name, ClaimTypes.Role))
            : new ClaimsPrincipal(new ClaimsIdentity());
    }

    // Broker:Sessions:MaxPerUser: counts the user's live sessions (this node's, and other nodes' from the user
    // registry), leaving out the one this CONNECT takes over; past the limit the new CONNECT is refused
    // (RefuseNew) or the user's oldest sessions are ended, on whichever node holds them, until there is room.
    private async ValueTask EnforceMaxPerUserAsync(StompSession session, StompFrame frame)
    {
        var max = _sessionOptions.MaxPerUser;
        var login = session.Principal!;
        var services = session.Services;
        var token = frame.GetString("session-token"u8);
        var takenOver = token is not null ? services.Registry.FindByTokenHash(StompSession.HashToken(token)) : null;
        var local = new List<StompSession>();
        foreach (var other in services.Registry.SessionsOf(login))
        {
            if (other != session && other != takenOver && other.State == SessionState.Connected)
            {
                local.Add(other);
            }
        }

        List<StompSessionInfo> remote = [];
        var terminateOldest = _sessionOptions.WhenMaxPerUser != MaxSessionsPerUserPolicy.RefuseNew;
        try
        {
            // Created times (to find the oldest) are asked of the other nodes only when a session has to go.
            remote = await services.ClusterSessions.LiveElsewhereAsync(login, takenOver is null ? token : null, terminateOldest ? max - local.Count : int.MaxValue, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            ApplicationLog.SessionCountFailed(Logger, ex, session.Id, login);
        }

        var count = local.Count + remote.Count;
        if (count < max)
        {
            return;
        }

        if (!terminateOldest)
        {
            throw StompProtocolException.LimitExceeded(LimitName, count + 1, max);
        }

        // A session whose created time its node did not tell is taken as the oldest (its node may be gone).
        var candidates = local.Select(s => (CreatedAt: s.CreatedAt, Local: (StompSession?)s, Remote: (StompSessionInfo?)null))
            .Concat(remote.Select(r => (CreatedAt: r.CreatedAt ?? DateTimeOffset.MinValue, Local: (StompSession?)null, Remote: (StompSessionInfo?)r)))
            .OrderBy(c => c.CreatedAt);
        var reason = $"session ended: '{login}' opened a newer session past {LimitName} ({max})";
        foreach (var oldest in candidates)
        {
            if (count < max)
            {
                break;
            }

            if (oldest.Local is { } here)
            {
                ApplicationLog.Terminated(Logger, here.Id, login, reason);
                Metrics.Terminated("max_per_user");
                here.Terminate(reason);
                count--;
            }
            else if (services.Cluster.IsEnabled)
            {
                // Its node ends it, or (down, no answer) its record is deleted here.
                await services.ClusterSessions.TerminateOnAsync(oldest.Remote!.Node, oldest.Remote.Id, login, reason, "max_per_user", CancellationToken.None).ConfigureAwait(false);
                count--;
            }
        }

        if (count >= max)
        {
            ApplicationLog.CannotEndRemoteSessions(Logger, login, count + 1, max);
        }
    }

    /// <summary>The limit's name in ERROR frames and metrics.</summary>
    public const string LimitName = "max-sessions-per-user";

    private void Notify(string sessionId, string name, Action<IStompSessionObserver> notify)
    {
        foreach (var observer in Observers)
        {
            try
            {
                notify(observer);
            }
            catch (Exception ex)
            {
                ApplicationLog.ObserverFailed(Logger, ex, observer.GetType().Name, name, sessionId);
            }
        }
    }

    // reply-to must name the sender's own /user/queue/<name>: a reply goes to the sending session only.
    private static bool TryOwnUserQueue(string destination, out string queueName)
    {
        const string ownQueues = Destinations.UserPrefix + "queue/";
        queueName = "";
        if (UserDestinations.CheckSubscribe(destination) is not null || !destination.StartsWith(ownQueues, StringComparison.Ordinal))
        {
            return false;
        }

        queueName = destination[ownQueues.Length..];
        return true;
    }

    private static List<KeyValuePair<string, string>> CopyHeaders(StompFrame frame)
    {
        var headers = new List<KeyValuePair<string, string>>(frame.HeaderCount);
        for (var i = 0; i < frame.HeaderCount; i++)
        {
            headers.Add(new(Encoding.UTF8.GetString(frame.HeaderName(i)), Encoding.UTF8.GetString(frame.HeaderValue(i))));
        }

        return headers;
    }

    // A line break would end the ERROR's message header early in STOMP 1.0 (it has no escaping).
    private static string Printable(string destination) => destination.ReplaceLineEndings(" ");
}
