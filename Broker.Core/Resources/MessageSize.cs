using Broker.Routing;

namespace Broker.Resources;

/// <summary>What a message is counted as by byte limits and the memory budget: its body, destination and headers, plus a fixed overhead.</summary>
internal static class MessageSize
{
    // The message object, its id and header list: roughly, and the same for every message.
    private const int Overhead = 128;

    public static long Of(BrokerMessage message)
    {
        long size = Overhead + message.Body.Length + message.Destination.Length + message.MessageId.Length;
        var headers = message.Headers;
        for (var i = 0; i < headers.Count; i++)
        {
            size += headers[i].Key.Length + headers[i].Value.Length;
        }

        return size;
    }
}
