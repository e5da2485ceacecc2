using System.Text.Json;
using System.Text.Json.Serialization;

namespace Broker.Durability;

/// <summary>The JSON the SQLite and Redis stores keep subscriptions and metadata in (source-generated, enums as names).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true)]
[JsonSerializable(typeof(List<SubscriptionRecord>))]
[JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class SessionStoreJsonContext : JsonSerializerContext;

internal static class SessionStoreJson
{
    public static string SerializeSubscriptions(IReadOnlyList<SubscriptionRecord> subscriptions) =>
        JsonSerializer.Serialize(subscriptions as List<SubscriptionRecord> ?? [.. subscriptions], SessionStoreJsonContext.Default.ListSubscriptionRecord);

    public static string SerializeMetadata(IReadOnlyDictionary<string, string> metadata) =>
        JsonSerializer.Serialize(metadata as Dictionary<string, string> ?? new Dictionary<string, string>(metadata), SessionStoreJsonContext.Default.DictionaryStringString);

    public static List<SubscriptionRecord> DeserializeSubscriptions(string json) =>
        JsonSerializer.Deserialize(json, SessionStoreJsonContext.Default.ListSubscriptionRecord) ?? [];

    public static Dictionary<string, string> DeserializeMetadata(string json) =>
        JsonSerializer.Deserialize(json, SessionStoreJsonContext.Default.DictionaryStringString) ?? [];
}
