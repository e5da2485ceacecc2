namespace Broker.Protocol;

/// <summary>A STOMP protocol version.</summary>
public enum StompVersion : byte
{
    V10 = 10,
    V11 = 11,
    V12 = 12,
}

/// <summary>Version names and negotiation.</summary>
public static class StompVersions
{
    public static string ToHeaderValue(this StompVersion version) => version switch
    {
        StompVersion.V10 => "1.0",
        StompVersion.V11 => "1.1",
        _ => "1.2",
    };

    // STOMP 1.2 "Protocol Negotiation": no accept-version means 1.0; otherwise the highest in common.
    public static bool TryNegotiate(string? acceptVersion, StompVersion maximum, out StompVersion version)
    {
        if (acceptVersion is null)
        {
            version = StompVersion.V10;
            return true;
        }

        var best = 0;
        foreach (var range in acceptVersion.AsSpan().Split(','))
        {
            var candidate = acceptVersion.AsSpan(range).Trim() switch
            {
                "1.0" => 10,
                "1.1" => 11,
                "1.2" => 12,
                _ => 0,
            };
            if (candidate <= (int)maximum && candidate > best)
            {
                best = candidate;
            }
        }

        version = (StompVersion)best;
        return best != 0;
    }
}
