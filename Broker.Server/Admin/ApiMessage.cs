using System.Text;
using System.Text.Json;
using Broker.Application;
using Broker.Protocol;

namespace Broker.Server.Admin;

/// <summary>
/// The JSON a message is posted as (<c>POST /api/publish</c>, <c>POST /api/users/{login}/messages</c>):
/// <c>{ "destination", "body" | "bodyBase64", "contentType"?, "headers"? }</c>, read into a <see cref="StompPayload"/>
/// under the limits a client's SEND meets. <c>body</c> a JSON string goes as its UTF-8 text (<c>text/plain;charset=utf-8</c>
/// unless <c>contentType</c> says otherwise); any other JSON value goes as its JSON text (<c>application/json</c>);
/// <c>bodyBase64</c> goes as the bytes it decodes to (<c>application/octet-stream</c>). Headers the broker sets
/// (<c>destination</c>, <c>content-length</c>, <c>content-type</c>, <c>message-id</c>, <c>subscription</c>, <c>ack</c>, …) are refused.
/// </summary>
internal sealed record ApiMessage(string Destination, StompPayload Payload)
{
    private static readonly string[] Properties = ["destination", "body", "bodyBase64", "contentType", "headers"];

    /// <summary>The request's bytes, at most <paramref name="limit"/> (<see cref="RequestLimit"/>); null when over it.</summary>
    public static async Task<byte[]?> ReadRequestAsync(HttpRequest request, long limit, CancellationToken cancellationToken)
    {
        if (request.ContentLength > limit)
        {
            return null;
        }

        // Kestrel's own cap (30 MB by default) would answer first, without saying which of ours was passed.
        if (request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
        {
            size.MaxRequestBodySize = limit + 1;
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > limit)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }

    /// <summary>Most bytes a request may have: a body of <c>Broker:MaxFrameSize</c> bytes as JSON text (escapes) or base64, and the rest.</summary>
    public static long RequestLimit(StompBrokerOptions options) => (2L * options.MaxFrameSize) + (64 * 1024);

    /// <summary>Reads a posted message; false with <paramref name="problem"/> saying what is wrong (and the limit, when one was passed).</summary>
    public static bool TryRead(ReadOnlyMemory<byte> json, StompBrokerOptions options, out ApiMessage? message, out ApiProblem? problem)
    {
        message = null;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException ex)
        {
            problem = ApiProblem.Bad($"the request body is not JSON: {ex.Message}");
            return false;
        }

        using (document)
        {
            problem = Read(document.RootElement, options, out message);
            return problem is null;
        }
    }

    private static ApiProblem? Read(JsonElement root, StompBrokerOptions options, out ApiMessage? message)
    {
        message = null;
        if (root.ValueKind != JsonValueKind.Object)
        {
            return ApiProblem.Bad($"the request body is a JSON {Kind(root)}; expected an object {{ \"destination\", \"body\", \"contentType\"?, \"headers\"? }}");
        }

        JsonElement? destination = null, body = null, bodyBase64 = null, contentType = null, headers = null;
        foreach (var property in root.EnumerateObject())
        {
            var name = Array.Find(Properties, p => p.Equals(property.Name, StringComparison.OrdinalIgnoreCase));
            switch (name)
            {
                case "destination": destination = property.Value; break;
                case "body": body = property.Value; break;
                case "bodyBase64": bodyBase64 = property.Value; break;
                case "contentType": contentType = property.Value; break;
                case "headers": headers = property.Value; break;
                default: return ApiProblem.Bad($"unknown property '{Shorten(property.Name)}'; expected {string.Join(", ", Properties)}");
            }
        }

        if (destination is not { ValueKind: JsonValueKind.String } || destination.Value.GetString() is not { Length: > 0 } target)
        {
            return ApiProblem.Bad(destination is null ? "missing 'destination'" : "'destination' must be a non-empty string");
        }

        if ((body is null || body.Value.ValueKind == JsonValueKind.Null) == (bodyBase64 is null || bodyBase64.Value.ValueKind == JsonValueKind.Null))
        {
            return ApiProblem.Bad(body is null && bodyBase64 is null ? "missing 'body' (or 'bodyBase64' for binary)" : "give either 'body' or 'bodyBase64', not both");
        }

        byte[] bytes;
        string defaultType;
        if (bodyBase64 is { ValueKind: not JsonValueKind.Null } encoded)
        {
            if (encoded.ValueKind != JsonValueKind.String || !encoded.TryGetBytesFromBase64(out var decoded))
            {
                return ApiProblem.Bad("'bodyBase64' must be a base64 string");
            }

            (bytes, defaultType) = (decoded, StompPayload.BinaryContentType);
        }
        else if (body!.Value.ValueKind == JsonValueKind.String)
        {
            (bytes, defaultType) = (Encoding.UTF8.GetBytes(body.Value.GetString()!), StompPayload.TextContentType);
        }
        else
        {
            (bytes, defaultType) = (Encoding.UTF8.GetBytes(body.Value.GetRawText()), StompPayload.JsonContentType);
        }

        if (bytes.Length > options.MaxFrameSize)
        {
            return ApiProblem.TooLarge(StompReaderLimits.MaxFrameSizeName,
                $"limit exceeded: {StompReaderLimits.MaxFrameSizeName} (the body has {bytes.Length} bytes; Broker:MaxFrameSize is {options.MaxFrameSize})");
        }

        var type = defaultType;
        if (contentType is { ValueKind: not JsonValueKind.Null } given)
        {
            if (given.ValueKind != JsonValueKind.String || given.GetString() is not { Length: > 0 } text || text.AsSpan().ContainsAny('\r', '\n'))
            {
                return ApiProblem.Bad("'contentType' must be a non-empty string without line breaks");
            }

            type = text;
        }

        var payload = StompPayload.Bytes(bytes, type);
        if (headers is { ValueKind: not JsonValueKind.Null } extra)
        {
            if (ReadHeaders(extra, options, out var list) is { } headerProblem)
            {
                return headerProblem;
            }

            try
            {
                payload = payload.WithHeaders(list);
            }
            catch (ArgumentException ex)
            {
                return ApiProblem.Bad($"'headers': {FirstSentence(ex.Message)}");
            }
        }

        message = new ApiMessage(target, payload);
        return null;
    }

    // At most Broker:MaxHeaders, each line at most Broker:MaxHeaderLineLength, as a client's SEND.
    private static ApiProblem? ReadHeaders(JsonElement headers, StompBrokerOptions options, out List<KeyValuePair<string, string>> list)
    {
        list = [];
        if (headers.ValueKind != JsonValueKind.Object)
        {
            return ApiProblem.Bad($"'headers' is a JSON {Kind(headers)}; expected an object of string values, such as {{ \"priority\": \"high\" }}");
        }

        foreach (var header in headers.EnumerateObject())
        {
            if (list.Count == options.MaxHeaders)
            {
                return ApiProblem.Bad($"limit exceeded: {StompReaderLimits.MaxHeadersName} ('headers' has more than Broker:MaxHeaders = {options.MaxHeaders})", StompReaderLimits.MaxHeadersName);
            }

            if (header.Value.ValueKind != JsonValueKind.String)
            {
                return ApiProblem.Bad($"'headers': the value of '{Shorten(header.Name)}' is a JSON {Kind(header.Value)}; expected a string");
            }

            var value = header.Value.GetString()!;
            if (header.Name.Length == 0)
            {
                return ApiProblem.Bad("'headers': a header name is empty");
            }

            if (Encoding.UTF8.GetByteCount(header.Name) + 1 + Encoding.UTF8.GetByteCount(value) > options.MaxHeaderLineLength)
            {
                return ApiProblem.Bad(
                    $"limit exceeded: {StompReaderLimits.MaxHeaderLineLengthName} (header '{Shorten(header.Name)}' is longer than Broker:MaxHeaderLineLength = {options.MaxHeaderLineLength} bytes)",
                    StompReaderLimits.MaxHeaderLineLengthName);
            }

            list.Add(new(header.Name, value));
        }

        return null;
    }

    private static string Kind(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        _ => "object",
    };

    // ArgumentException's message ends with " (Parameter 'x')", which means nothing to an HTTP caller.
    internal static string FirstSentence(string message) =>
        message.IndexOf(" (Parameter '", StringComparison.Ordinal) is var at and >= 0 ? message[..at] : message;

    internal static string Shorten(string text) => text.Length <= 40 ? text : string.Concat(text.AsSpan(0, 40), "…");
}

/// <summary>Why a request was refused: its HTTP status, the text for the caller, and the limit it passed, if one.</summary>
internal sealed record ApiProblem(int Status, string Error, string? Limit = null)
{
    public static ApiProblem Bad(string error, string? limit = null) => new(StatusCodes.Status400BadRequest, error, limit);

    public static ApiProblem TooLarge(string limit, string error) => new(StatusCodes.Status413PayloadTooLarge, error, limit);

    public IResult ToResult() => Results.Json(new ApiError(Error) { Limit = Limit }, statusCode: Status);
}
