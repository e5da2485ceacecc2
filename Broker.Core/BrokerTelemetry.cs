using System.Diagnostics;
using Broker.Routing;

namespace Broker;

/// <summary>
/// Traces through the broker, on the <see cref="ActivitySource"/> named "Broker": a SEND is a span ("send
/// &lt;destination&gt;"), whose parent is the W3C <c>traceparent</c> header the SEND carried, and each MESSAGE written
/// from it is a child span ("deliver &lt;destination&gt;"). The MESSAGE's <c>traceparent</c> names the send span, so a
/// consumer's trace continues from the broker. Nothing is started while nobody listens; the SEND's own
/// <c>traceparent</c> then travels to MESSAGE unchanged, as any header does.
/// </summary>
public static class BrokerTelemetry
{
    public const string ActivitySourceName = "Broker";

    internal static readonly ActivitySource Source = new(ActivitySourceName);

    private const string TraceParent = "traceparent";
    private const string TraceState = "tracestate";

    /// <summary>Starts the span of a SEND to <paramref name="message"/>'s destination (null while nobody listens) and points the message's <c>traceparent</c> at it.</summary>
    internal static Activity? StartSend(BrokerMessage message, List<KeyValuePair<string, string>> headers)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var parentIndex = headers.FindIndex(h => h.Key == TraceParent);
        var state = headers.Find(h => h.Key == TraceState).Value;
        ActivityContext.TryParse(parentIndex >= 0 ? headers[parentIndex].Value : null, state, out var parent);
        var activity = Source.StartActivity("send " + message.Destination, ActivityKind.Server, parent);
        if (activity is null)
        {
            return null;
        }

        activity.SetTag("messaging.system", "stomp");
        activity.SetTag("messaging.operation.type", "send");
        activity.SetTag("messaging.destination.name", message.Destination);
        activity.SetTag("messaging.message.id", message.MessageId);
        var id = new KeyValuePair<string, string>(TraceParent, activity.Id!);
        if (parentIndex >= 0)
        {
            headers[parentIndex] = id;
        }
        else
        {
            headers.Add(id);
        }

        message.TraceContext = activity.Context;
        return activity;
    }

    /// <summary>
    /// For a message that arrives from elsewhere (the relay): its <c>traceparent</c>, while tracing is on, so that
    /// its deliveries become children of the span that sent it.
    /// </summary>
    internal static void Adopt(BrokerMessage message)
    {
        if (!Source.HasListeners())
        {
            return;
        }

        foreach (var (name, value) in message.Headers)
        {
            if (name == TraceParent)
            {
                if (ActivityContext.TryParse(value, null, out var context))
                {
                    message.TraceContext = context;
                }

                return;
            }
        }
    }

    /// <summary>A span for one MESSAGE written to <paramref name="subscription"/>, child of its SEND's span; null while nobody listens.</summary>
    internal static Activity? StartDeliver(BrokerMessage message, string subscription)
    {
        if (message.TraceContext == default || !Source.HasListeners())
        {
            return null;
        }

        var activity = Source.StartActivity("deliver " + message.Destination, ActivityKind.Producer, message.TraceContext);
        activity?.SetTag("messaging.system", "stomp");
        activity?.SetTag("messaging.operation.type", "deliver");
        activity?.SetTag("messaging.destination.name", message.Destination);
        activity?.SetTag("messaging.message.id", message.MessageId);
        activity?.SetTag("messaging.destination.subscription.name", subscription);
        return activity;
    }
}
