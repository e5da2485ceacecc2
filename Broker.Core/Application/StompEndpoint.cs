namespace Broker.Application;

/// <summary>What a mapped handler answers: a SEND (<c>MapStompMessage</c>) or a SUBSCRIBE (<c>MapStompSubscription</c>).</summary>
internal enum StompHandlerKind
{
    Message,
    Subscription,
}

/// <summary>A mapped handler: its template and its invoker, compiled once at map time.</summary>
internal sealed record StompEndpoint(DestinationTemplate Template, StompHandlerKind Kind, Func<StompMessageContext, ValueTask<object?>> Invoke)
{
    public override string ToString() => $"{Kind} {Template}";
}
