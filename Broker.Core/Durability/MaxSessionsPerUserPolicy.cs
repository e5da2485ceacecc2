namespace Broker.Durability;

/// <summary>What a CONNECT past <see cref="DurableSessionOptions.MaxPerUser"/> does (<c>Broker:Sessions:WhenMaxPerUser</c>).</summary>
public enum MaxSessionsPerUserPolicy
{
    /// <summary>The user's oldest sessions are ended (ERROR, close, durable record deleted) to make room for the new one.</summary>
    TerminateOldest,

    /// <summary>The new CONNECT gets an ERROR naming <c>max-sessions-per-user</c>.</summary>
    RefuseNew,
}
