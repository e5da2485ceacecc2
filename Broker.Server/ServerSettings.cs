namespace Broker.Server;

/// <summary>Where the executable listens: section <c>Broker:Server</c> (env <c>Broker__Server__HttpPort</c>, <c>--Broker:Server:HttpPort</c>).</summary>
internal sealed class ServerSettings
{
    public const string SectionName = "Broker:Server";

    /// <summary>Address to bind; 0.0.0.0 for every interface, 127.0.0.1 for this machine only.</summary>
    public string ListenAddress { get; set; } = "0.0.0.0";

    /// <summary>HTTP port serving the WebSocket endpoint, /health and the demo page. 0 picks a free port.</summary>
    public int HttpPort { get; set; } = 8080;

    /// <summary>Raw STOMP TCP port; -1 turns TCP off. 0 picks a free port.</summary>
    public int TcpPort { get; set; } = 61613;

    /// <summary>Path of the STOMP-over-WebSocket endpoint.</summary>
    public string WebSocketPath { get; set; } = "/ws";
}
