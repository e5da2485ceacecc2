namespace Broker.Durability;

internal static class SessionRecordChecks
{
    /// <summary>What every store requires of a record before writing it.</summary>
    public static void Validate(SessionRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentException.ThrowIfNullOrEmpty(record.Id, nameof(record));
        if (record.TokenHash is null || record.TokenHash.Length == 0)
        {
            throw new ArgumentException("A session record needs a token hash.", nameof(record));
        }
    }
}
