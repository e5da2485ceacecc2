using System.Globalization;
using System.Text;
using Broker.Routing;
using RabbitMQ.Client;

namespace Broker.Relay.RabbitMq;

/// <summary>
/// STOMP messages as AMQP messages and back. The body travels verbatim; <c>message-id</c> is the AMQP
/// <c>message-id</c> property; the publisher's headers (content-type and user headers) travel, in
/// order, in the AMQP header table, and <c>content-type</c> also as the AMQP property for AMQP clients.
/// A header repeated on SEND (STOMP 1.2 "Repeated Header Entries") travels as an AMQP field array of its
/// values in order, and comes back as the same repeated entries; the first is the value.
/// </summary>
internal static class RelayMessages
{
    private const string ContentType = "content-type";

    // RabbitMQ.Client 7 adds this to every message published with confirmation tracking.
    private const string PublishSequenceHeader = "x-dotnet-pub-seq-no";
    private static long s_foreignIds;

    public const string MaxHeaderNameLengthLimit = "max-header-name-length";
    public const string MaxRelayHeaderBytesLimit = "max-relay-header-bytes";

    // An AMQP field table's keys are short strings.
    private const int MaxShortString = 255;

    /// <summary>
    /// Refuses, before it reaches AMQP, a message RabbitMQ could not take (which would cost the whole connection, not
    /// just this client): a header name over 255 UTF-8 bytes (<c>max-header-name-length</c>), or more than
    /// <paramref name="maxHeaderBytes"/> of headers (<c>max-relay-header-bytes</c>).
    /// </summary>
    public static void CheckHeaders(BrokerMessage message, int maxHeaderBytes)
    {
        long total = 0;
        foreach (var (name, value) in message.Headers)
        {
            var nameBytes = Encoding.UTF8.GetByteCount(name);
            if (nameBytes > MaxShortString)
            {
                throw Protocol.StompProtocolException.LimitExceeded(MaxHeaderNameLengthLimit, nameBytes, MaxShortString);
            }

            total += nameBytes + Encoding.UTF8.GetByteCount(value);
        }

        if (total > maxHeaderBytes)
        {
            throw Protocol.StompProtocolException.LimitExceeded(MaxRelayHeaderBytesLimit, total, maxHeaderBytes);
        }
    }

    public static BasicProperties ToProperties(BrokerMessage message, bool persistent)
    {
        var properties = new BasicProperties
        {
            MessageId = message.MessageId,
            DeliveryMode = persistent ? DeliveryModes.Persistent : DeliveryModes.Transient,
        };

        if (message.Headers.Count > 0)
        {
            var table = new Dictionary<string, object?>(message.Headers.Count, StringComparer.Ordinal);
            foreach (var (name, value) in message.Headers)
            {
                if (!table.TryAdd(name, value))
                {
                    // A repeat: the entry becomes the list of this header's values, in order.
                    if (table[name] is List<object> repeats)
                    {
                        repeats.Add(value);
                    }
                    else
                    {
                        table[name] = new List<object> { table[name]!, value };
                    }
                }
                else if (name == ContentType && Encoding.UTF8.GetByteCount(value) <= MaxShortString)
                {
                    // A short string too; a longer value still travels in the header table.
                    properties.ContentType = value;
                }
            }

            properties.Headers = table;
        }

        return properties;
    }

    public static BrokerMessage FromDelivery(string destination, IReadOnlyBasicProperties properties, ReadOnlyMemory<byte> body)
    {
        var headers = new List<KeyValuePair<string, string>>(properties.Headers?.Count ?? 1);
        if (properties.Headers is { } table)
        {
            foreach (var (name, value) in table)
            {
                if (value is IList<object> repeats)
                {
                    foreach (var repeat in repeats)
                    {
                        headers.Add(new(name, ToText(repeat)));
                    }
                }
                else if (value is not null && name != PublishSequenceHeader)
                {
                    headers.Add(new(name, ToText(value)));
                }
            }
        }

        // A message from an AMQP publisher may carry only the property.
        if (properties.ContentType is { } contentType && !headers.Exists(h => h.Key == ContentType))
        {
            headers.Add(new(ContentType, contentType));
        }

        var messageId = properties.MessageId ?? "amqp-" + Interlocked.Increment(ref s_foreignIds).ToString(CultureInfo.InvariantCulture);

        // The client's buffer is reused after the handler returns: the message keeps its own copy.
        var message = new BrokerMessage(destination, messageId, headers, body.ToArray());
        BrokerTelemetry.Adopt(message);
        return message;
    }

    private static string ToText(object value) => value switch
    {
        byte[] bytes => Encoding.UTF8.GetString(bytes),
        string text => text,
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };
}
