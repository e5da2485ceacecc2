using System.Text;
using Broker.Protocol;

namespace Broker.Tests;

/// <summary>A frame as a client saw it, copied out of the reader's buffers.</summary>
internal sealed record ReceivedFrame(StompCommand Command, IReadOnlyList<KeyValuePair<string, string>> HeaderList, byte[] Body, bool ArrivedAsBinary = false)
{
    public string? this[string name] => HeaderList.FirstOrDefault(h => h.Key == name).Value;

    public string BodyText => Encoding.UTF8.GetString(Body);

    public static ReceivedFrame From(StompFrame frame, bool binary)
    {
        var headers = new List<KeyValuePair<string, string>>();
        for (var i = 0; i < frame.HeaderCount; i++)
        {
            headers.Add(new(Encoding.UTF8.GetString(frame.HeaderName(i)), Encoding.UTF8.GetString(frame.HeaderValue(i))));
        }

        return new ReceivedFrame(frame.Command, headers, System.Buffers.BuffersExtensions.ToArray(frame.Body), binary);
    }

    public override string ToString() =>
        $"{Command} {string.Join(' ', HeaderList.Select(h => h.Key + ":" + h.Value))} [{Body.Length} bytes] {(Command == StompCommand.Error ? BodyText : "")}";
}
