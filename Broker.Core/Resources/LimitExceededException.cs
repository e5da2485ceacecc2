namespace Broker.Resources;

/// <summary>
/// The broker refused a request because a limit on what it holds for clients was reached: a typed failure,
/// which the session answers with an ERROR whose <c>message</c> is <see cref="Exception.Message"/> (built here,
/// in one place, from <see cref="Limit"/>) and then closes. Not a fault of the server: it is not logged as one.
/// </summary>
public sealed class LimitExceededException : Exception
{
    private LimitExceededException(string limit, string message) : base(message) => Limit = limit;

    public LimitExceededException() : this("limit", "limit exceeded") { }

    public LimitExceededException(string message) : this("limit", message) { }

    public LimitExceededException(string message, Exception innerException) : base(message, innerException) => Limit = "limit";

    /// <summary>The limit's name (one of <see cref="LimitNames"/>).</summary>
    public string Limit { get; }

    /// <summary>A queue is full (<see cref="LimitNames.MaxQueueLength"/> or <see cref="LimitNames.MaxQueueBytes"/>) and refuses the publish.</summary>
    public static LimitExceededException QueueFull(string limit, string queue) => new(limit, $"limit exceeded: {limit} for queue '{queue}'");

    /// <summary>A publisher stayed flow-controlled (the broker above its memory limit) for <paramref name="blocked"/>.</summary>
    public static LimitExceededException MemoryLimit(TimeSpan blocked) => new(
        LimitNames.MemoryLimit,
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"limit exceeded: {LimitNames.MemoryLimit} (publishing blocked for {blocked.TotalSeconds:0.#} s while the broker holds more than its memory limit)"));
}
