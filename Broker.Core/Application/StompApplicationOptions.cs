using System.Text.Json;

namespace Broker.Application;

/// <summary>
/// The application API's settings: where <c>/app/...</c> destinations start and how handlers run
/// (<c>services.AddStompBroker().ConfigureApplication(o => ...)</c>).
/// </summary>
public sealed class StompApplicationOptions
{
    /// <summary>
    /// The prefix of destinations handled by application code (Spring's <c>setApplicationDestinationPrefixes</c>).
    /// Default <c>/app</c>: a SEND to <c>/app/chat/general</c> goes to the handler mapped to <c>/chat/{room}</c>.
    /// </summary>
    public string DestinationPrefix { get; set; } = "/app";

    /// <summary>
    /// Most application handlers one session runs at once. Handlers run off the session's read loop; past this many,
    /// the read loop waits for one to finish before it reads the next frame (back-pressure on that client only). Default 4.
    /// </summary>
    public int MaxConcurrentHandlersPerSession { get; set; } = 4;

    /// <summary>Longest a DISCONNECT waits for the session's running handlers (their replies and receipts go out first). Default 5 seconds.</summary>
    public TimeSpan DisconnectDrainTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How bodies bind to typed parameters and how typed payloads are written. Default <see cref="JsonSerializerOptions.Web"/> (ASP.NET's web defaults).</summary>
    public JsonSerializerOptions JsonSerializerOptions { get; set; } = JsonSerializerOptions.Web;
}
