using System.Security.Claims;
using System.Text.Json;

namespace Broker.Application;

/// <summary>
/// What an application handler knows about the frame it handles: a SEND to a <c>MapStompMessage</c> destination or a
/// SUBSCRIBE to a <c>MapStompSubscription</c> one. Take it as a handler parameter. Valid until the handler's task ends.
/// </summary>
public sealed class StompMessageContext
{
    private readonly string[] _routeValues;
    private readonly IReadOnlyList<string> _routeNames;
    private readonly IReplyTarget _reply;
    private readonly JsonSerializerOptions _json;
    private Dictionary<string, string>? _routeDictionary;

    internal StompMessageContext(
        InboundWork work,
        string sessionId,
        string? login,
        ClaimsPrincipal principal,
        IServiceProvider services,
        JsonSerializerOptions json,
        CancellationToken aborted)
    {
        Destination = work.Destination;
        SubscriptionId = work.SubscriptionId;
        Headers = work.Headers;
        Body = work.Body;
        _routeValues = work.RouteValues;
        _routeNames = work.Endpoint.Template.ParameterNames;
        _reply = work.Reply;
        _json = json;
        SessionId = sessionId;
        Login = login;
        Principal = principal;
        Services = services;
        Aborted = aborted;
    }

    /// <summary>The destination the client named, prefix included (<c>/app/chat/general</c>).</summary>
    public string Destination { get; }

    /// <summary>The subscription's id, for a SUBSCRIBE; null for a SEND.</summary>
    public string? SubscriptionId { get; }

    /// <summary>The template's values by name (<c>room</c> → <c>general</c> for <c>/chat/{room}</c>).</summary>
    public IReadOnlyDictionary<string, string> RouteValues
    {
        get
        {
            if (_routeDictionary is null)
            {
                var values = new Dictionary<string, string>(_routeValues.Length, StringComparer.OrdinalIgnoreCase);
                for (var i = 0; i < _routeValues.Length; i++)
                {
                    values[_routeNames[i]] = _routeValues[i];
                }

                _routeDictionary = values;
            }

            return _routeDictionary;
        }
    }

    /// <summary>The frame's headers in order, repeats included (and any an interceptor added).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; }

    /// <summary>The SEND's body; empty for a SUBSCRIBE.</summary>
    public ReadOnlyMemory<byte> Body { get; }

    /// <summary>The <c>content-type</c> header, or null.</summary>
    public string? ContentType => GetHeader("content-type");

    /// <summary>The session's id (CONNECTED's <c>session</c>): <see cref="IStompMessenger.SendToSessionAsync"/> reaches it.</summary>
    public string SessionId { get; }

    /// <summary>The authenticated principal's name; null when anonymous.</summary>
    public string? Login { get; }

    /// <summary>The principal: the WebSocket request's user when it was authenticated, else one made from the STOMP login (an unauthenticated one when anonymous).</summary>
    public ClaimsPrincipal Principal { get; }

    /// <summary>The services of this handler's scope (one scope per handled frame).</summary>
    public IServiceProvider Services { get; }

    /// <summary>Cancelled when the session closes: replies would go nowhere.</summary>
    public CancellationToken Aborted { get; }

    /// <summary>
    /// Where <see cref="ReplyAsync(StompPayload, CancellationToken)"/> and the handler's return value go: for a SEND,
    /// its <c>reply-to</c> header (a <c>/user/queue/&lt;name&gt;</c> destination) or else <c>/user/queue/replies</c>, to this
    /// session only; for a SUBSCRIBE, the subscription itself.
    /// </summary>
    public string ReplyDestination => _reply.Destination;

    /// <summary>The first value of header <paramref name="name"/>, or null.</summary>
    public string? GetHeader(string name)
    {
        foreach (var header in Headers)
        {
            if (header.Key == name)
            {
                return header.Value;
            }
        }

        return null;
    }

    /// <summary>
    /// Sends <paramref name="payload"/> to this session on <see cref="ReplyDestination"/>. For a SEND the session must
    /// subscribe to that destination to get it (as with every <c>/user/queue/</c> destination); otherwise it is dropped.
    /// True when it was handed on.
    /// </summary>
    public ValueTask<bool> ReplyAsync(StompPayload payload, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(payload);
        return _reply.SendAsync(payload, cancellationToken);
    }

    /// <summary>Sends <paramref name="value"/> as a reply: text for a string, bytes for a byte array, otherwise JSON.</summary>
    public ValueTask<bool> ReplyAsync<T>(T value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(value);
        return _reply.SendAsync(StompPayload.From(value, _json), cancellationToken);
    }

    internal string RouteValue(int index) => _routeValues[index];

    internal JsonSerializerOptions JsonOptions => _json;
}

/// <summary>Where an application's reply goes.</summary>
internal interface IReplyTarget
{
    /// <summary>The destination the client sees the reply on.</summary>
    string Destination { get; }

    /// <summary>Sends it; false when the session does not take it (not subscribed, closed).</summary>
    ValueTask<bool> SendAsync(StompPayload payload, CancellationToken cancellationToken);
}

/// <summary>One SEND or SUBSCRIBE for a handler, copied off the read loop's buffers.</summary>
internal sealed record InboundWork(
    StompEndpoint Endpoint,
    string Destination,
    string[] RouteValues,
    IReadOnlyList<KeyValuePair<string, string>> Headers,
    ReadOnlyMemory<byte> Body,
    string? Receipt,
    string? SubscriptionId,
    IReplyTarget Reply,
    IReplyTarget Errors);
