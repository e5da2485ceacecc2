namespace Broker.Benchmarks.Durability;

/// <summary>Which durable session store the in-process broker uses.</summary>
internal enum BenchStore
{
    /// <summary>No store registered: durable sessions off.</summary>
    None,
    Memory,
    Sqlite,
    Redis,
}

internal static class BenchStores
{
    public static BenchStore Parse(string text) => text.ToLowerInvariant() switch
    {
        "none" or "off" => BenchStore.None,
        "memory" => BenchStore.Memory,
        "sqlite" => BenchStore.Sqlite,
        "redis" => BenchStore.Redis,
        _ => throw new ArgumentException($"unknown store '{text}': expected sqlite, redis, memory or none"),
    };

    public static string Name(BenchStore store) => store.ToString().ToLowerInvariant();
}
