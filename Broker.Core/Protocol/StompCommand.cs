namespace Broker.Protocol;

/// <summary>The STOMP frame commands (STOMP 1.2, "Frames and Headers").</summary>
public enum StompCommand : byte
{
    Unknown = 0,
    Connect,
    Stomp,
    Connected,
    Send,
    Subscribe,
    Unsubscribe,
    Ack,
    Nack,
    Begin,
    Commit,
    Abort,
    Disconnect,
    Message,
    Receipt,
    Error,
}

/// <summary>Command names on the wire.</summary>
public static class StompCommands
{
    /// <summary>Parses a command line (without its EOL); returns <see cref="StompCommand.Unknown"/> if it is none.</summary>
    public static StompCommand Parse(ReadOnlySpan<byte> line) => line.Length switch
    {
        3 when line.SequenceEqual("ACK"u8) => StompCommand.Ack,
        4 when line.SequenceEqual("SEND"u8) => StompCommand.Send,
        4 when line.SequenceEqual("NACK"u8) => StompCommand.Nack,
        5 when line.SequenceEqual("STOMP"u8) => StompCommand.Stomp,
        5 when line.SequenceEqual("BEGIN"u8) => StompCommand.Begin,
        5 when line.SequenceEqual("ABORT"u8) => StompCommand.Abort,
        5 when line.SequenceEqual("ERROR"u8) => StompCommand.Error,
        6 when line.SequenceEqual("COMMIT"u8) => StompCommand.Commit,
        7 when line.SequenceEqual("CONNECT"u8) => StompCommand.Connect,
        7 when line.SequenceEqual("MESSAGE"u8) => StompCommand.Message,
        7 when line.SequenceEqual("RECEIPT"u8) => StompCommand.Receipt,
        9 when line.SequenceEqual("SUBSCRIBE"u8) => StompCommand.Subscribe,
        9 when line.SequenceEqual("CONNECTED"u8) => StompCommand.Connected,
        10 when line.SequenceEqual("DISCONNECT"u8) => StompCommand.Disconnect,
        11 when line.SequenceEqual("UNSUBSCRIBE"u8) => StompCommand.Unsubscribe,
        _ => StompCommand.Unknown,
    };

    /// <summary>The command's name as UTF-8 bytes.</summary>
    public static ReadOnlySpan<byte> Name(StompCommand command) => command switch
    {
        StompCommand.Connect => "CONNECT"u8,
        StompCommand.Stomp => "STOMP"u8,
        StompCommand.Connected => "CONNECTED"u8,
        StompCommand.Send => "SEND"u8,
        StompCommand.Subscribe => "SUBSCRIBE"u8,
        StompCommand.Unsubscribe => "UNSUBSCRIBE"u8,
        StompCommand.Ack => "ACK"u8,
        StompCommand.Nack => "NACK"u8,
        StompCommand.Begin => "BEGIN"u8,
        StompCommand.Commit => "COMMIT"u8,
        StompCommand.Abort => "ABORT"u8,
        StompCommand.Disconnect => "DISCONNECT"u8,
        StompCommand.Message => "MESSAGE"u8,
        StompCommand.Receipt => "RECEIPT"u8,
        StompCommand.Error => "ERROR"u8,
        _ => throw new ArgumentOutOfRangeException(nameof(command)),
    };

    /// <summary>STOMP 1.2: only SEND, MESSAGE and ERROR frames may have a body.</summary>
    public static bool MayHaveBody(StompCommand command) =>
        command is StompCommand.Send or StompCommand.Message or StompCommand.Error;

    /// <summary>STOMP 1.2 "Value Encoding": CONNECT and CONNECTED headers are never escaped.</summary>
    public static bool IsEscaped(StompCommand command, StompVersion version) =>
        version != StompVersion.V10 && command is not (StompCommand.Connect or StompCommand.Stomp or StompCommand.Connected);
}
