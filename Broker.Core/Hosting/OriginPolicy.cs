using Microsoft.AspNetCore.Http;

namespace Broker.Hosting;

/// <summary>
/// Which web pages may open a STOMP WebSocket, checked before the upgrade (Spring's default): a request
/// without an <c>Origin</c> header (not a browser) and a same-origin request (the page was served by this
/// host, scheme and port) are accepted; any other origin only when <see cref="StompBrokerOptions.AllowedOrigins"/>
/// lists it: an exact origin, <c>scheme://*.domain</c> (any subdomain, at any depth), a port of <c>*</c>, or <c>*</c> for all.
/// </summary>
internal sealed class OriginPolicy
{
    private readonly bool _any;
    private readonly HashSet<string> _exact = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<OriginPattern> _patterns = [];

    public OriginPolicy(StompBrokerOptions options)
    {
        foreach (var raw in options.AllowedOrigins)
        {
            var entry = raw.Trim().TrimEnd('/');
            if (entry.Length == 0)
            {
                continue;
            }

            if (entry == "*")
            {
                _any = true;
            }
            else if (entry.Contains('*', StringComparison.Ordinal))
            {
                _patterns.Add(OriginPattern.Parse(entry));
            }
            else
            {
                _exact.Add(Normalize(entry) ?? throw Invalid(entry));
            }
        }
    }

    public string Describe() =>
        _any ? "WebSocket upgrades are accepted from every web page origin (Broker:AllowedOrigins contains *)"
        : _exact.Count + _patterns.Count == 0 ? "WebSocket upgrades are accepted from same-origin pages and non-browser clients only (Broker:AllowedOrigins adds other origins)"
        : $"WebSocket upgrades are accepted from same-origin pages, non-browser clients and {string.Join(", ", _exact.Concat(_patterns.Select(p => p.Text)))}";

    public bool IsAllowed(HttpRequest request)
    {
        var origin = request.Headers.Origin;
        if (origin.Count == 0)
        {
            return true;
        }

        if (origin.Count > 1 || _any)
        {
            return _any;
        }

        if (!TryParse(origin[0], out var uri))
        {
            return false;
        }

        if (IsSameOrigin(uri, request))
        {
            return true;
        }

        return _exact.Contains(Canonical(uri)) || _patterns.Exists(p => p.Matches(uri));
    }

    // Scheme, host and port equal the request's own (RFC 6454), default ports filled in.
    private static bool IsSameOrigin(Uri origin, HttpRequest request)
    {
        if (!request.Host.HasValue || !Uri.TryCreate($"{request.Scheme}://{request.Host.Value}", UriKind.Absolute, out var self))
        {
            return false;
        }

        return string.Equals(origin.Scheme, self.Scheme, StringComparison.OrdinalIgnoreCase)
            && string.Equals(origin.IdnHost, self.IdnHost, StringComparison.OrdinalIgnoreCase)
            && origin.Port == self.Port;
    }

    // An Origin value is scheme://host[:port], nothing else ("null" from sandboxed pages does not parse).
    private static bool TryParse(string? value, out Uri uri)
    {
        uri = null!;
        if (string.IsNullOrEmpty(value) || !Uri.TryCreate(value, UriKind.Absolute, out var parsed) ||
            parsed.Scheme is not ("http" or "https") || parsed.PathAndQuery != "/" || parsed.UserInfo.Length > 0 || value.EndsWith('/'))
        {
            return false;
        }

        uri = parsed;
        return true;
    }

    private static string? Normalize(string origin) =>
        Uri.TryCreate(origin, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.PathAndQuery == "/" ? Canonical(uri) : null;

    private static string Canonical(Uri uri) => $"{uri.Scheme}://{uri.IdnHost}:{uri.Port}".ToLowerInvariant();

    private static InvalidOperationException Invalid(string entry) =>
        new($"Broker:AllowedOrigins: '{entry}' is not an origin; expected scheme://host[:port], scheme://*.domain[:port|:*] or *");

    /// <summary><c>scheme://*.domain[:port]</c>, <c>scheme://host:*</c> or both.</summary>
    private sealed record OriginPattern(string Text, string Scheme, string? HostSuffix, string? Host, int? Port)
    {
        public static OriginPattern Parse(string text)
        {
            var schemeEnd = text.IndexOf("://", StringComparison.Ordinal);
            if (schemeEnd <= 0)
            {
                throw Invalid(text);
            }

            var scheme = text[..schemeEnd].ToLowerInvariant();
            var authority = text[(schemeEnd + 3)..];
            int? port = null;
            var colon = authority.LastIndexOf(':');
            if (colon >= 0 && !authority.EndsWith(']'))
            {
                var portText = authority[(colon + 1)..];
                authority = authority[..colon];
                if (portText != "*")
                {
                    port = int.TryParse(portText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var p) && p is > 0 and <= 65535 ? p : throw Invalid(text);
                }
            }
            else
            {
                port = scheme == "https" ? 443 : 80;
            }

            if (scheme is not ("http" or "https"))
            {
                throw Invalid(text);
            }

            if (authority.StartsWith("*.", StringComparison.Ordinal) && authority.Length > 2 && !authority[2..].Contains('*', StringComparison.Ordinal))
            {
                return new(text, scheme, authority[1..].ToLowerInvariant(), null, port);
            }

            if (!authority.Contains('*', StringComparison.Ordinal) && port is null && Normalize($"{scheme}://{authority}") is not null)
            {
                return new(text, scheme, null, new Uri($"{scheme}://{authority}").IdnHost.ToLowerInvariant(), null);
            }

            throw Invalid(text);
        }

        public bool Matches(Uri origin)
        {
            if (!string.Equals(origin.Scheme, Scheme, StringComparison.OrdinalIgnoreCase) || (Port is { } port && origin.Port != port))
            {
                return false;
            }

            var host = origin.IdnHost;
            return HostSuffix is not null
                ? host.Length > HostSuffix.Length && host.EndsWith(HostSuffix, StringComparison.OrdinalIgnoreCase)
                : string.Equals(host, Host, StringComparison.OrdinalIgnoreCase);
        }
    }
}
