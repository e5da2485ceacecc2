using System.Text.Json;
using System.Text.Json.Serialization;
using Broker.Application;
using Broker.Durability;

namespace Broker.Cluster;

/// <summary>
/// One control-plane message on a node's channel (<see cref="ClusterKeys.NodeControl"/>): a request of
/// <see cref="Kind"/> from node <see cref="From"/> numbered <see cref="Id"/>, or the <see cref="Reply"/> to it.
/// </summary>
internal sealed record ControlMessage
{
    public const string Terminate = "terminate";
    public const string TerminateUser = "terminate-user";
    public const string TakeOver = "take-over";
    public const string DescribeUser = "describe-user";
    public const string DescribeSession = "describe-session";

    /// <summary>Ends an away session for good (past <c>max-away-sessions-per-user</c>), unless it is connected there again.</summary>
    public const string EndAway = "end-away";
    public const string Reply = "reply";

    public required string Kind { get; init; }

    public long Id { get; init; }

    public string From { get; init; } = "";

    public string? SessionId { get; init; }

    public string? Login { get; init; }

    public string? Reason { get; init; }

    /// <summary>Take-over: the hex SHA-256 of the token the new connection presented; the holder acts only when it matches.</summary>
    public string? TokenHash { get; init; }

    /// <summary>Reply: the session was held there and the request was carried out.</summary>
    public bool Found { get; init; }

    /// <summary>Reply to <see cref="EndAway"/>: the session is connected (there, or on another node as the user registry lists it), so it was left.</summary>
    public bool Connected { get; init; }

    /// <summary>Reply to <see cref="TerminateUser"/>: how many sessions the node ended.</summary>
    public int Count { get; init; }

    /// <summary>Reply to <see cref="DescribeUser"/>: the user's sessions on that node; to <see cref="DescribeSession"/>: that session, when held there.</summary>
    public List<StompSessionInfo>? Sessions { get; init; }

    /// <summary>Reply to <see cref="TakeOver"/>: the session's final state, as also written to the store.</summary>
    public SessionRecord? Record { get; init; }

    public ControlMessage ReplyTo() => new() { Kind = Reply, Id = Id, From = From };

    public byte[] Encode() => JsonSerializer.SerializeToUtf8Bytes(this, ControlMessageJson.Default.ControlMessage);

    /// <summary>The message, or null when it is not one (another version, garbage).</summary>
    public static ControlMessage? Decode(ReadOnlySpan<byte> payload)
    {
        try
        {
            return JsonSerializer.Deserialize(payload, ControlMessageJson.Default.ControlMessage);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ControlMessage))]
internal sealed partial class ControlMessageJson : JsonSerializerContext;
