namespace Broker.Durability;

/// <summary>
/// A session store could not do what was asked: its backend is unreachable, timed out, or refused
/// (an unwritable SQLite file, Redis down). The operation may or may not have been applied; retrying
/// it is safe, since every store operation is idempotent.
/// </summary>
public sealed class SessionStoreException : Exception
{
    public SessionStoreException()
    {
    }

    public SessionStoreException(string message)
        : base(message)
    {
    }

    public SessionStoreException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
