namespace Broker.Application;

/// <summary>
/// The <see cref="IStompMessenger"/> overloads: a typed value (a string as text, a byte array as bytes, anything else
/// as JSON), or text or bytes with a content type and extra headers.
/// </summary>
public static class StompMessengerExtensions
{
    public static ValueTask PublishAsync<T>(this IStompMessenger messenger, string destination, T value, CancellationToken cancellationToken = default) =>
        messenger.PublishAsync(destination, messenger.CreatePayload(value), cancellationToken);

    public static ValueTask PublishAsync(this IStompMessenger messenger, string destination, string text, string contentType, IEnumerable<KeyValuePair<string, string>>? headers = null, CancellationToken cancellationToken = default) =>
        messenger.PublishAsync(destination, StompPayload.Text(text, contentType).WithHeaders(headers), cancellationToken);

    public static ValueTask PublishAsync(this IStompMessenger messenger, string destination, ReadOnlyMemory<byte> body, string contentType, IEnumerable<KeyValuePair<string, string>>? headers = null, CancellationToken cancellationToken = default) =>
        messenger.PublishAsync(destination, StompPayload.Bytes(body, contentType).WithHeaders(headers), cancellationToken);

    public static ValueTask<int> SendToUserAsync<T>(this IStompMessenger messenger, string login, string destination, T value, CancellationToken cancellationToken = default) =>
        messenger.SendToUserAsync(login, destination, messenger.CreatePayload(value), cancellationToken);

    public static ValueTask<int> SendToUserAsync(this IStompMessenger messenger, string login, string destination, string text, string contentType, IEnumerable<KeyValuePair<string, string>>? headers = null, CancellationToken cancellationToken = default) =>
        messenger.SendToUserAsync(login, destination, StompPayload.Text(text, contentType).WithHeaders(headers), cancellationToken);

    public static ValueTask<int> SendToUserAsync(this IStompMessenger messenger, string login, string destination, ReadOnlyMemory<byte> body, string contentType, IEnumerable<KeyValuePair<string, string>>? headers = null, CancellationToken cancellationToken = default) =>
        messenger.SendToUserAsync(login, destination, StompPayload.Bytes(body, contentType).WithHeaders(headers), cancellationToken);

    public static ValueTask<bool> SendToSessionAsync<T>(this IStompMessenger messenger, string sessionId, string destination, T value, CancellationToken cancellationToken = default) =>
        messenger.SendToSessionAsync(sessionId, destination, messenger.CreatePayload(value), cancellationToken);

    public static ValueTask<bool> SendToSessionAsync(this IStompMessenger messenger, string sessionId, string destination, string text, string contentType, IEnumerable<KeyValuePair<string, string>>? headers = null, CancellationToken cancellationToken = default) =>
        messenger.SendToSessionAsync(sessionId, destination, StompPayload.Text(text, contentType).WithHeaders(headers), cancellationToken);

    public static ValueTask<bool> SendToSessionAsync(this IStompMessenger messenger, string sessionId, string destination, ReadOnlyMemory<byte> body, string contentType, IEnumerable<KeyValuePair<string, string>>? headers = null, CancellationToken cancellationToken = default) =>
        messenger.SendToSessionAsync(sessionId, destination, StompPayload.Bytes(body, contentType).WithHeaders(headers), cancellationToken);
}
