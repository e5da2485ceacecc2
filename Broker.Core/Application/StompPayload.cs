using System.Text;
using System.Text.Json;

namespace Broker.Application;

/// <summary>
/// The body of a message the application sends (<see cref="IStompMessenger"/>, <see cref="StompMessageContext.ReplyAsync(StompPayload, CancellationToken)"/>):
/// bytes, their <c>content-type</c>, and extra headers that travel with the MESSAGE.
/// </summary>
public sealed class StompPayload
{
    /// <summary>The content type of text payloads made from a <see cref="string"/>.</summary>
    public const string TextContentType = "text/plain;charset=utf-8";

    /// <summary>The content type of payloads serialised as JSON.</summary>
    public const string JsonContentType = "application/json";

    /// <summary>The content type of raw bytes when none is given.</summary>
    public const string BinaryContentType = "application/octet-stream";

    private StompPayload(ReadOnlyMemory<byte> body, string? contentType, IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        Body = body;
        ContentType = contentType;
        Headers = headers;
    }

    public ReadOnlyMemory<byte> Body { get; }

    /// <summary>The MESSAGE's <c>content-type</c>; null sends none.</summary>
    public string? ContentType { get; }

    /// <summary>Extra headers, in order, after <c>content-type</c>.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; }

    /// <summary><paramref name="value"/> as JSON (<paramref name="options"/>, else <see cref="JsonSerializerOptions.Web"/>), <c>application/json</c>.</summary>
    public static StompPayload Json<T>(T value, JsonSerializerOptions? options = null) =>
        new(JsonSerializer.SerializeToUtf8Bytes(value, options ?? JsonSerializerOptions.Web), JsonContentType, []);

    /// <summary>A value of run-time type <paramref name="type"/> as JSON.</summary>
    internal static StompPayload Json(object value, Type type, JsonSerializerOptions options) =>
        new(JsonSerializer.SerializeToUtf8Bytes(value, type, options), JsonContentType, []);

    /// <summary><paramref name="text"/> in UTF-8.</summary>
    public static StompPayload Text(string text, string contentType = TextContentType) => new(Encoding.UTF8.GetBytes(text), contentType, []);

    /// <summary>Bytes as they are.</summary>
    public static StompPayload Bytes(ReadOnlyMemory<byte> body, string? contentType = BinaryContentType) => new(body, contentType, []);

    /// <summary>This payload with one more header (repeats allowed: the first of a name is its value).</summary>
    public StompPayload WithHeader(string name, string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(value);
        CheckHeader(name, value, nameof(name));
        return new StompPayload(Body, ContentType, [.. Headers, new(name, value)]);
    }

    /// <summary>This payload with <paramref name="headers"/> added.</summary>
    public StompPayload WithHeaders(IEnumerable<KeyValuePair<string, string>>? headers)
    {
        if (headers is null)
        {
            return this;
        }

        var all = new List<KeyValuePair<string, string>>(Headers);
        foreach (var header in headers)
        {
            ArgumentException.ThrowIfNullOrEmpty(header.Key, nameof(headers));
            ArgumentNullException.ThrowIfNull(header.Value, nameof(headers));
            CheckHeader(header.Key, header.Value, nameof(headers));
            all.Add(header);
        }

        return new StompPayload(Body, ContentType, all);
    }

    /// <summary>What a handler returned, as a payload: a payload as it is, text, bytes, or anything else as JSON.</summary>
    internal static StompPayload From(object value, JsonSerializerOptions options) => value switch
    {
        StompPayload payload => payload,
        string text => Text(text),
        byte[] bytes => Bytes(bytes),
        ReadOnlyMemory<byte> memory => Bytes(memory),
        _ => Json(value, value.GetType(), options),
    };

    /// <summary>The MESSAGE headers: <c>content-type</c> first, then the extra ones.</summary>
    internal List<KeyValuePair<string, string>> MessageHeaders(int extra = 0)
    {
        var headers = new List<KeyValuePair<string, string>>(Headers.Count + 1 + extra);
        if (ContentType is not null)
        {
            headers.Add(new("content-type", ContentType));
        }

        headers.AddRange(Headers);
        return headers;
    }

    // The broker sets these (content-type comes from ContentType); a name with ':' or a line break cannot be written.
    private static void CheckHeader(string name, string value, string parameter)
    {
        if (IsReserved(name))
        {
            throw new ArgumentException($"header '{name}' is set by the broker; a payload cannot carry it", parameter);
        }

        if (name.AsSpan().ContainsAny(":\r\n") || value.AsSpan().ContainsAny('\r', '\n'))
        {
            throw new ArgumentException($"header '{name}' may not hold ':' in its name or a line break", parameter);
        }
    }

    private static bool IsReserved(string name) => name is "destination" or "message-id" or "subscription" or "ack" or "content-length"
        or "content-type" or "receipt" or "transaction" or "redelivered";
}
