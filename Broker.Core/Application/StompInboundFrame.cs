using System.Security.Claims;
using System.Text;
using Broker.Protocol;

namespace Broker.Application;

/// <summary>
/// A frame as an <see cref="IStompInterceptor"/> sees it: its command, destination and headers, who sent it, and a
/// way to add headers. Valid only during <see cref="IStompInterceptor.OnInbound"/>: the frame's buffers are reused.
/// </summary>
public sealed class StompInboundFrame
{
    private readonly StompFrame _frame;

    internal StompInboundFrame(StompFrame frame, string? destination, string? sessionId, string? login, ClaimsPrincipal principal)
    {
        _frame = frame;
        Destination = destination;
        SessionId = sessionId;
        Login = login;
        Principal = principal;
    }

    /// <summary><see cref="StompCommand.Connect"/> (a STOMP frame too), <see cref="StompCommand.Subscribe"/>, <see cref="StompCommand.Send"/> or <see cref="StompCommand.Unsubscribe"/>.</summary>
    public StompCommand Command => _frame.Command == StompCommand.Stomp ? StompCommand.Connect : _frame.Command;

    /// <summary>The destination a SEND or SUBSCRIBE names, or the one an UNSUBSCRIBE ends; null for CONNECT.</summary>
    public string? Destination { get; }

    /// <summary>The session's id; for a CONNECT that resumes, the id it has until the resume is done.</summary>
    public string? SessionId { get; }

    /// <summary>The authenticated principal's name; null when anonymous.</summary>
    public string? Login { get; }

    /// <summary>The principal: the WebSocket request's user, or one made from the STOMP login, or an anonymous one.</summary>
    public ClaimsPrincipal Principal { get; }

    /// <summary>The frame's headers in order, repeats included (a CONNECT's <c>passcode</c> too: never log them all).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers
    {
        get
        {
            var headers = new List<KeyValuePair<string, string>>(_frame.HeaderCount);
            for (var i = 0; i < _frame.HeaderCount; i++)
            {
                headers.Add(new(Encoding.UTF8.GetString(_frame.HeaderName(i)), Encoding.UTF8.GetString(_frame.HeaderValue(i))));
            }

            return headers;
        }
    }

    /// <summary>The first value of header <paramref name="name"/>, or null.</summary>
    public string? GetHeader(string name) => _frame.GetString(Encoding.UTF8.GetBytes(name));

    /// <summary>
    /// Adds a header after the frame's own. A header the frame already has keeps its first value (STOMP's rule for
    /// repeats): to be sure of a header's value, refuse frames that carry it. A SEND's added headers travel to its
    /// MESSAGE and to an application handler's <see cref="StompMessageContext.Headers"/>.
    /// </summary>
    public void AddHeader(string name, string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(value);
        if (name.AsSpan().ContainsAny(":\r\n") || value.AsSpan().ContainsAny("\r\n"))
        {
            throw new ArgumentException($"header '{name}' may not hold ':' in its name or a line break", nameof(name));
        }

        var nameLength = Encoding.UTF8.GetByteCount(name);
        var valueLength = Encoding.UTF8.GetByteCount(value);
        var span = _frame.Reserve(nameLength + valueLength, out var offset);
        Encoding.UTF8.GetBytes(name, span);
        Encoding.UTF8.GetBytes(value, span[nameLength..]);
        _frame.Commit(nameLength + valueLength);
        _frame.AddHeader(offset, nameLength, offset + nameLength, valueLength);
    }
}
