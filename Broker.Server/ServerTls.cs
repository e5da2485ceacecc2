using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Broker.Server;

/// <summary>
/// <c>Broker:Server:Tls</c>: loads the certificate and puts Kestrel's TLS on a listener, with a log line
/// at Information or Warning when a handshake fails (Kestrel itself says so at Debug only), naming a
/// client that spoke plain text to the TLS port.
/// </summary>
internal static partial class ServerTls
{
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);
    private static readonly object EstablishedKey = new();

    /// <summary>The configured certificate with its private key; throws with the setting's name when it cannot be used.</summary>
    public static X509Certificate2 LoadCertificate(TlsSettings tls)
    {
        var path = tls.CertificatePath!;
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"Broker:Server:Tls:CertificatePath: no file at '{Path.GetFullPath(path)}'");
        }

        if (tls.KeyPath is { Length: > 0 } key && !File.Exists(key))
        {
            throw new InvalidOperationException($"Broker:Server:Tls:KeyPath: no file at '{Path.GetFullPath(key)}'");
        }

        X509Certificate2 certificate;
        try
        {
            certificate = tls.KeyPath is { Length: > 0 } || IsPem(path)
                ? LoadPem(path, tls.KeyPath is { Length: > 0 } k ? k : null, tls.Password)
                : X509CertificateLoader.LoadPkcs12FromFile(path, tls.Password);
        }
        catch (CryptographicException ex)
        {
            throw new InvalidOperationException($"Broker:Server:Tls: cannot load the certificate '{path}': {ex.Message} (is Broker:Server:Tls:Password right?)", ex);
        }

        if (!certificate.HasPrivateKey)
        {
            certificate.Dispose();
            throw new InvalidOperationException($"Broker:Server:Tls: the certificate '{path}' has no private key (give it in the PFX, in the PEM file, or in Broker:Server:Tls:KeyPath)");
        }

        return certificate;
    }

    /// <summary>
    /// TLS on <paramref name="listen"/>. <paramref name="alpn"/>: advertise HTTP's application protocols
    /// (the HTTP port); the STOMP port advertises none.
    /// </summary>
    public static void UseTls(ListenOptions listen, X509Certificate2 certificate, ILogger logger, bool alpn)
    {
        listen.Use(next => context => WatchHandshakeAsync(context, next, logger));
        listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = certificate,
            HandshakeTimeout = HandshakeTimeout,
            OnAuthenticate = alpn ? null : (_, ssl) => ssl.ApplicationProtocols = null,
        });
        listen.Use(next => context =>
        {
            context.Items[EstablishedKey] = true;
            return next(context);
        });
    }

    private static bool IsPem(string path)
    {
        using var file = File.OpenText(path);
        var buffer = new char[256];
        var read = file.ReadBlock(buffer, 0, buffer.Length);
        return buffer.AsSpan(0, read).IndexOf("-----BEGIN ".AsSpan(), StringComparison.Ordinal) >= 0;
    }

    private static X509Certificate2 LoadPem(string certificatePath, string? keyPath, string? password)
    {
        using var pem = string.IsNullOrEmpty(password)
            ? X509Certificate2.CreateFromPemFile(certificatePath, keyPath)
            : X509Certificate2.CreateFromEncryptedPemFile(certificatePath, password, keyPath);

        // A key loaded from PEM is ephemeral; SslStream on Windows needs a stored one, so go through PKCS#12.
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }

    // Looks at the client's first bytes (without consuming them), lets Kestrel's TLS run, and says why
    // when the handshake did not complete.
    private static async Task WatchHandshakeAsync(ConnectionContext context, ConnectionDelegate next, ILogger logger)
    {
        var first = await PeekAsync(context.Transport.Input).ConfigureAwait(false);
        if (first is null)
        {
            HandshakeNotStarted(logger, context.LocalEndPoint?.ToString(), context.RemoteEndPoint?.ToString());
            return;
        }

        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            if (!context.Items.ContainsKey(EstablishedKey))
            {
                // A TLS record starts with 0x16 (handshake); an SSL 2 style hello with the high bit set.
                if (first.Length > 0 && first[0] != 0x16 && first[0] < 0x80)
                {
                    PlainTextOnTlsPort(logger, context.LocalEndPoint?.ToString(), context.RemoteEndPoint?.ToString(), Printable(first));
                }
                else
                {
                    HandshakeFailed(logger, context.LocalEndPoint?.ToString(), context.RemoteEndPoint?.ToString());
                }
            }
        }
    }

    // Up to 16 bytes the client sent first, left in the pipe for TLS to read; null when it sent nothing in time.
    private static async Task<byte[]?> PeekAsync(PipeReader input)
    {
        using var timeout = new CancellationTokenSource(HandshakeTimeout);
        try
        {
            var result = await input.ReadAsync(timeout.Token).ConfigureAwait(false);
            var bytes = result.Buffer.Slice(0, Math.Min(16, result.Buffer.Length)).ToArray();
            input.AdvanceTo(result.Buffer.Start);
            return bytes.Length == 0 ? null : bytes;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ConnectionResetException)
        {
            return null;
        }
    }

    // The first line only, printable ASCII only: enough to recognise "CONNECT" or "GET / HTTP/1.1", nothing a client could use to forge log lines.
    private static string Printable(byte[] bytes)
    {
        var chars = new char[bytes.Length];
        var n = 0;
        foreach (var b in bytes)
        {
            if (b is (byte)'\r' or (byte)'\n')
            {
                break;
            }

            chars[n++] = b is >= 0x20 and < 0x7f ? (char)b : '.';
        }

        return new string(chars, 0, n);
    }

    [LoggerMessage(200, LogLevel.Warning, "TLS handshake failed on {Local} from {Remote}: the client spoke plain text ('{FirstBytes}'); this port requires TLS (wss:// for WebSocket, STOMP over TLS on the TCP port)")]
    private static partial void PlainTextOnTlsPort(ILogger logger, string? local, string? remote, string firstBytes);

    [LoggerMessage(201, LogLevel.Information, "TLS handshake failed on {Local} from {Remote} (the client may not trust the certificate or share a TLS version; Kestrel logs the cause at Debug under Microsoft.AspNetCore.Server.Kestrel)")]
    private static partial void HandshakeFailed(ILogger logger, string? local, string? remote);

    [LoggerMessage(202, LogLevel.Debug, "TLS connection on {Local} from {Remote} closed before any handshake")]
    private static partial void HandshakeNotStarted(ILogger logger, string? local, string? remote);
}
