using System.Diagnostics;
using Broker.Application;
using Broker.Durability;
using Broker.Routing;
using Broker.Sessions;
using Microsoft.Extensions.Options;

namespace Broker.Server.Admin;

/// <summary>
/// The HTTP API under <c>/api/</c> (behind <see cref="ApiKeyFilter"/>): this node's sessions, ending them, and the
/// statistics the dashboard draws. Bad input gets 400 with a message saying what is wrong.
/// </summary>
internal sealed class AdminApi(
    IStompSessionControl control,
    StatsSampler sampler,
    BrokerCounters counters,
    StompSessionServices services,
    IOptions<DurableSessionOptions> durableOptions,
    ILogger<AdminApi> logger)
{
    public const int DefaultSessionLimit = 1000;
    public const int MaxSessionLimit = 10_000;
    public const int DefaultDestinationLimit = 100;
    public const int MaxDestinationLimit = 1000;
    public const int MaxReasonLength = 200;
    public const int MaxLoginLength = 256;
    public const int MaxSessionIdLength = 64;
    public const string DefaultReason = "session ended by an administrator";

    private readonly DateTimeOffset _startedAt = ProcessStartedAt();

    public void Map(RouteGroupBuilder api)
    {
        api.MapGet("/sessions", SessionsAsync);
        api.MapDelete("/sessions/{id}", EndSessionAsync);
        api.MapDelete("/users/{login}/sessions", EndUserSessionsAsync);
        api.MapGet("/stats", StatsAsync);
        api.Map("/{**rest}", static (HttpRequest request) => NotFound($"no API route {request.Method} {request.Path}"));
    }

    // GET /api/sessions[?user=<login>][&limit=<n>]: this node's sessions, or a user's (with those the user registry lists on other nodes).
    private async Task<IResult> SessionsAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var query = request.Query;
        string? user = null;
        if (query.TryGetValue("user", out var users))
        {
            user = users.ToString();
            if (LoginProblem(user) is { } problem)
            {
                return BadRequest($"query parameter 'user': {problem}; give a login, or leave it out for every session");
            }
        }

        if (!TryReadLimit(request, "limit", DefaultSessionLimit, 1, MaxSessionLimit, out var limit, out var error))
        {
            return error;
        }

        StompSessionList list;
        if (user is null)
        {
            list = await control.ListAsync(limit, cancellationToken);
        }
        else
        {
            var found = (await control.FindByUserAsync(user, cancellationToken)).ToList();
            found.Sort(StompSessionControl.ListOrder);
            list = new StompSessionList(found.Count, found.Count > limit ? found[..limit] : found);
        }

        return Results.Json(new SessionsResponse(services.NodeId, list.Total, list.Total > list.Sessions.Count, [.. list.Sessions.Select(ToJson)]));
    }

    // DELETE /api/sessions/{id}[?reason=...]: the live connection gets an ERROR with the reason and closes; the record is deleted.
    private async Task<IResult> EndSessionAsync(string id, HttpRequest request, CancellationToken cancellationToken)
    {
        if (id.Length > MaxSessionIdLength || !id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
        {
            return BadRequest($"'{Shorten(id)}' is not a session id (letters, digits, '-' and '_', at most {MaxSessionIdLength})");
        }

        if (!TryReadReason(request, out var reason, out var error))
        {
            return error;
        }

        var before = await control.FindAsync(id, cancellationToken);
        if (!await control.TerminateAsync(id, reason, cancellationToken))
        {
            return NotFound($"no session '{id}' on this node or in the session store");
        }

        Log.SessionEnded(logger, id, reason);
        return Results.Json(new SessionEndedResponse(id, Connected: before?.Connected ?? false, reason));
    }

    // DELETE /api/users/{login}/sessions[?reason=...]: every session of the user, live and away.
    private async Task<IResult> EndUserSessionsAsync(string login, HttpRequest request, CancellationToken cancellationToken)
    {
        if (LoginProblem(login) is { } problem)
        {
            return BadRequest($"login: {problem}");
        }

        if (!TryReadReason(request, out var reason, out var error))
        {
            return error;
        }

        var ended = await control.TerminateUserAsync(login, reason, cancellationToken);
        Log.UserSessionsEnded(logger, login, ended, reason);
        return Results.Json(new UserSessionsEndedResponse(login, ended, reason));
    }

    // GET /api/stats[?destinations=<n>]
    private async Task<IResult> StatsAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (!TryReadLimit(request, "destinations", DefaultDestinationLimit, 0, MaxDestinationLimit, out var destinationLimit, out var error))
        {
            return error;
        }

        var sessions = (await control.ListAsync(int.MaxValue, cancellationToken)).Sessions;
        var users = new HashSet<string>(StringComparer.Ordinal);
        var (connected, durable) = (0, 0);
        foreach (var session in sessions)
        {
            if (session.Login is { } login)
            {
                users.Add(login);
            }

            connected += session.Connected ? 1 : 0;
            durable += session.Connected && session.Durable ? 1 : 0;
        }

        var totals = counters.Read();
        var gauges = counters.ReadGauges();
        var (destinations, source) = Destinations(sessions);
        destinations.Sort(static (a, b) =>
            b.Subscribers != a.Subscribers ? b.Subscribers.CompareTo(a.Subscribers)
            : (b.QueueDepth ?? 0) != (a.QueueDepth ?? 0) ? (b.QueueDepth ?? 0).CompareTo(a.QueueDepth ?? 0)
            : string.CompareOrdinal(a.Destination, b.Destination));
        var destinationTotal = destinations.Count;
        if (destinationTotal > destinationLimit)
        {
            destinations.RemoveRange(destinationLimit, destinationTotal - destinationLimit);
        }

        var gc = GC.GetGCMemoryInfo();
        return Results.Json(new StatsResponse(
            services.NodeId,
            DateTimeOffset.UtcNow,
            _startedAt,
            services.Registry.Count,
            new SessionCounts(connected, sessions.Count - connected, users.Count, durable),
            new MessageTotals(totals.Published, totals.Delivered, totals.Dropped, totals.Errors, totals.BytesReceived, totals.BytesSent,
                totals.LimitsExceeded, totals.ResumedRecovered, totals.ResumedNotRecovered),
            new RatesJson(StatsSampler.Interval.TotalSeconds, StatsSampler.RingSize, sampler.Rates()),
            new BrokerJson(BrokerKind(services.Broker), gauges.QueuedMessages, gauges.StoreBacklog, services.Persistence is not null, gauges.Links),
            new DestinationsJson(destinationTotal, destinationTotal > destinationLimit, source, destinations),
            new MemoryJson(Environment.WorkingSet, gc.HeapSizeBytes, gc.TotalCommittedBytes, GC.GetTotalMemory(forceFullCollection: false),
                GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)),
            Limits(services.Options, durableOptions.Value)));
    }

    // The in-process broker knows its topics and queues; for another broker (the relay) this node's sessions say who subscribes to what.
    private (List<DestinationJson> Items, string Source) Destinations(IReadOnlyList<StompSessionInfo> sessions)
    {
        if (services.Broker is InProcessBroker inProcess)
        {
            return (inProcess.Statistics().ConvertAll(static d => new DestinationJson(d.Destination, d.Kind, d.Subscribers, d.QueueDepth, d.Unacked, d.History, d.LastOffset)), "broker");
        }

        var subscribers = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var session in sessions)
        {
            if (!session.Connected)
            {
                continue;
            }

            foreach (var subscription in session.Subscriptions)
            {
                subscribers[subscription.Destination] = subscribers.GetValueOrDefault(subscription.Destination) + 1;
            }
        }

        var items = new List<DestinationJson>(subscribers.Count);
        foreach (var (destination, count) in subscribers)
        {
            items.Add(new DestinationJson(destination, DestinationKind(destination), count, null, null, null, null));
        }

        return (items, "sessions");
    }

    private static string DestinationKind(string destination) =>
        Routing.Destinations.IsUser(destination) ? "user"
        : Routing.Destinations.IsQueue(destination) ? "queue"
        : Routing.Destinations.IsWildcard(Routing.Destinations.Name(destination)) ? "wildcard"
        : "topic";

    private static string BrokerKind(IMessageBroker broker) => broker switch
    {
        InProcessBroker => "inprocess",
        _ when broker.GetType().Name == "RabbitMqRelay" => "rabbitmq",
        _ => broker.GetType().Name,
    };

    private static List<LimitJson> Limits(StompBrokerOptions o, DurableSessionOptions d) =>
    [
        new("Broker:MaxFrameSize", "max-frame-size", "bytes", Number(o.MaxFrameSize)),
        new("Broker:MaxHeaders", "max-headers", "count", Number(o.MaxHeaders)),
        new("Broker:MaxHeaderLineLength", "max-header-line-length", "bytes", Number(o.MaxHeaderLineLength)),
        new("Broker:MaxSubscriptionsPerConnection", "max-subscriptions", "count", Number(o.MaxSubscriptionsPerConnection)),
        new("Broker:MaxTransactionSize", "max-transaction-size", "count", Number(o.MaxTransactionSize)),
        new("Broker:MaxTransactionsPerConnection", "max-transactions", "count", Number(o.MaxTransactionsPerConnection)),
        new("Broker:MaxPendingBytes", "max-pending-bytes", "bytes", Number(o.MaxPendingBytes)),
        new("Broker:MaxUnackedPerSubscription", "max-unacked", "messages", Number(o.MaxUnackedPerSubscription)),
        new("Broker:SendTimeout", "send-timeout", "time", o.SendTimeout.ToString("c")),
        new("Broker:ConnectTimeout", "connect-timeout", "time", o.ConnectTimeout.ToString("c")),
        new("Broker:MaxQueueLength", null, "messages", Number(o.MaxQueueLength)),
        new("Broker:HistorySize", null, "messages", Number(o.HistorySize)),
        new("Broker:HistoryMaxAge", null, "time", o.HistoryMaxAge.ToString("c")),
        new("Broker:Sessions:Ttl", null, "time", d.Ttl.ToString("c")),
    ];

    private static DateTimeOffset ProcessStartedAt()
    {
        using var process = Process.GetCurrentProcess();
        return new DateTimeOffset(process.StartTime.ToUniversalTime(), TimeSpan.Zero);
    }

    private static string Number(long value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static SessionJson ToJson(StompSessionInfo s) => new(
        s.Id, s.Login, s.Node, s.Connected, s.Durable, s.Version, s.Remote, s.CreatedAt, s.ConnectedAt, s.LastSeenAt, s.PendingBytes,
        [.. s.Subscriptions.Select(x => new SubscriptionJson(x.Id, x.Destination, AckText(x.Ack)))]);

    private static string AckText(AckMode mode) => mode switch
    {
        AckMode.Client => "client",
        AckMode.ClientIndividual => "client-individual",
        _ => "auto",
    };

    private static string? LoginProblem(string login) =>
        string.IsNullOrWhiteSpace(login) ? "it is empty"
        : login.Length > MaxLoginLength ? $"it is longer than {MaxLoginLength} characters"
        : null;

    private static bool TryReadLimit(HttpRequest request, string name, int fallback, int min, int max, out int value, out IResult error)
    {
        value = fallback;
        error = Results.Empty;
        if (!request.Query.TryGetValue(name, out var text))
        {
            return true;
        }

        if (!int.TryParse(text.ToString(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out value) || value < min || value > max)
        {
            error = BadRequest($"query parameter '{name}' is '{Shorten(text.ToString())}'; expected a whole number from {min} to {max}");
            return false;
        }

        return true;
    }

    private static bool TryReadReason(HttpRequest request, out string reason, out IResult error)
    {
        reason = DefaultReason;
        error = Results.Empty;
        if (!request.Query.TryGetValue("reason", out var text))
        {
            return true;
        }

        reason = text.ToString().Trim();
        if (reason.Length == 0 || reason.Length > MaxReasonLength || reason.Any(char.IsControl))
        {
            error = BadRequest($"query parameter 'reason' must be 1 to {MaxReasonLength} characters with no control characters (it goes into the client's ERROR frame)");
            return false;
        }

        return true;
    }

    private static string Shorten(string text) => text.Length <= 40 ? text : string.Concat(text.AsSpan(0, 40), "…");

    private static IResult BadRequest(string message) => Results.Json(new ApiError(message), statusCode: StatusCodes.Status400BadRequest);

    private static IResult NotFound(string message) => Results.Json(new ApiError(message), statusCode: StatusCodes.Status404NotFound);
}
