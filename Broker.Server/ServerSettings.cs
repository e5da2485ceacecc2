namespace Broker.Server;

/// <summary>Where the executable listens: section <c>Broker:Server</c> (env <c>Broker__Server__HttpPort</c>, <c>--Broker:Server:HttpPort</c>).</summary>
internal sealed class ServerSettings
{
    public const string SectionName = "Broker:Server";

    /// <summary>
    /// Address to bind; 0.0.0.0 (the default) for every interface, 127.0.0.1 for this machine only. Every
    /// interface is safe by default because anonymous clients are accepted from loopback only.
    /// </summary>
    public string ListenAddress { get; set; } = "0.0.0.0";

    /// <summary>HTTP port serving the WebSocket endpoint, /health and the demo page. 0 picks a free port.</summary>
    public int HttpPort { get; set; } = 8080;

    /// <summary>Raw STOMP TCP port; -1 turns TCP off. 0 picks a free port.</summary>
    public int TcpPort { get; set; } = 61613;

    /// <summary>Path of the STOMP-over-WebSocket endpoint.</summary>
    public string WebSocketPath { get; set; } = "/ws";

    /// <summary>TLS on both ports (<c>Broker:Server:Tls</c>); off unless a certificate is given.</summary>
    public TlsSettings Tls { get; set; } = new();

    /// <summary>
    /// Trust <c>X-Forwarded-For</c>, <c>-Proto</c> and <c>-Host</c> from <see cref="KnownProxies"/> (loopback
    /// always): behind a reverse proxy, the client's address and scheme are then the real ones, for the
    /// anonymous-access and same-origin checks.
    /// </summary>
    public bool ForwardedHeaders { get; set; }

    /// <summary>Proxy addresses besides loopback whose forwarded headers are trusted.</summary>
    public List<string> KnownProxies { get; set; } = [];
}

/// <summary><c>Broker:Server:Tls</c>: a PFX file (with <see cref="Password"/>), or a PEM certificate with its key.</summary>
internal sealed class TlsSettings
{
    /// <summary>A .pfx/.p12 file, or a PEM certificate (chain); TLS is on when set.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>The PEM private key, when not in <see cref="CertificatePath"/>'s file.</summary>
    public string? KeyPath { get; set; }

    /// <summary>The PFX password, or the password of an encrypted PEM key.</summary>
    public string? Password { get; set; }

    public bool Enabled => !string.IsNullOrWhiteSpace(CertificatePath);
}
