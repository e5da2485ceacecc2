namespace Broker.Application;

/// <summary>
/// Thrown by an application handler to tell the sender what went wrong: its <see cref="Exception.Message"/> goes to the
/// sender on <c>/user/queue/errors</c>. Any other exception a handler throws is logged, and the sender is told only its
/// type name and a fixed text.
/// </summary>
public class StompApplicationException : Exception
{
    public StompApplicationException()
        : base("the application refused the message")
    {
    }

    public StompApplicationException(string message)
        : base(message)
    {
    }

    public StompApplicationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
