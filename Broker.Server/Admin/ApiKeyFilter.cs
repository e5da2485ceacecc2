using System.Security.Cryptography;
using System.Text;

namespace Broker.Server.Admin;

/// <summary>
/// Lets a request to <c>/api/</c> through only with <c>Authorization: Bearer &lt;key&gt;</c>; anything else gets 401.
/// The key is compared in constant time (SHA-256 of the UTF-8 bytes on both sides, so not even its length shows).
/// </summary>
internal sealed class ApiKeyFilter(string key) : IEndpointFilter
{
    private const string Scheme = "Bearer ";
    private readonly byte[] _keyHash = SHA256.HashData(Encoding.UTF8.GetBytes(key));

    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        if (IsAuthorized(context.HttpContext.Request))
        {
            return next(context);
        }

        context.HttpContext.Response.Headers.WWWAuthenticate = "Bearer";
        return ValueTask.FromResult<object?>(Results.Json(new ApiError("send the API key as 'Authorization: Bearer <key>' (Broker:Api:Key)"), statusCode: StatusCodes.Status401Unauthorized));
    }

    private bool IsAuthorized(HttpRequest request)
    {
        var values = request.Headers.Authorization;
        if (values.Count != 1 || values[0] is not { } header || !header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var presented = header.AsSpan(Scheme.Length).Trim();
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        var bytes = Encoding.UTF8.GetBytes(presented.ToString());
        SHA256.HashData(bytes, hash);
        return CryptographicOperations.FixedTimeEquals(hash, _keyHash);
    }
}
