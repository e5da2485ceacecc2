using System.Security.Cryptography;

namespace Broker.Security;

/// <summary>
/// Salted passcode hashes for <c>Broker:Users</c>: <c>pbkdf2-sha256$&lt;iterations&gt;$&lt;salt base64&gt;$&lt;hash base64&gt;</c>
/// (PBKDF2-HMAC-SHA256 through <see cref="Rfc2898DeriveBytes.Pbkdf2(ReadOnlySpan{char}, ReadOnlySpan{byte}, Span{byte}, int, HashAlgorithmName)"/>).
/// The executable prints one with <c>Broker.Server hash-passcode</c>.
/// </summary>
public static class PasscodeHasher
{
    public const string Scheme = "pbkdf2-sha256";

    /// <summary>
    /// Iterations of new hashes. OWASP's figure for PBKDF2-SHA256 is 600,000, which costs about 0.3-0.9 s of
    /// CPU per check on a small VM; a broker checks on every CONNECT (and every reconnect after a restart),
    /// so the default is 100,000 (ASP.NET Core Identity's count), about 0.05-0.2 s. Throttling bounds how
    /// often one address or login can make the server pay it; choose more with <c>--iterations</c>.
    /// The hash protects the configuration file; a long random passcode is what protects the account.
    /// </summary>
    public const int DefaultIterations = 100_000;

    public const int MinIterations = 1_000;

    public const int MaxIterations = 10_000_000;

    private const int SaltBytes = 16;
    private const int HashBytes = 32;
    private const string Prefix = Scheme + "$";

    /// <summary>A new hash of <paramref name="passcode"/> with a random salt.</summary>
    public static string Hash(string passcode, int iterations = DefaultIterations)
    {
        ArgumentNullException.ThrowIfNull(passcode);
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, MinIterations);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(iterations, MaxIterations);
        var salt = RandomNumberGenerator.GetBytes(SaltBytes);
        var hash = Rfc2898DeriveBytes.Pbkdf2(passcode, salt, iterations, HashAlgorithmName.SHA256, HashBytes);
        return $"{Prefix}{iterations}${Convert.ToBase64String(salt)}${Convert.ToBase64String(hash)}";
    }

    /// <summary>Whether a configured passcode is written as a hash (and so must parse as one).</summary>
    public static bool IsHash(string configured) => configured.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Checks <paramref name="passcode"/> against <paramref name="hash"/> in constant time; a malformed hash throws <see cref="FormatException"/>.</summary>
    public static bool Verify(string passcode, string hash) =>
        TryParse(hash, out var parsed, out var error) ? parsed.Verify(passcode) : throw new FormatException(error);

    internal static bool TryParse(string text, out PasscodeHash hash, out string error)
    {
        hash = null!;
        var parts = text.Split('$');
        if (parts.Length != 4 || parts[0] != Scheme)
        {
            error = $"expected {Scheme}$<iterations>$<salt base64>$<hash base64>";
            return false;
        }

        if (!int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var iterations) ||
            iterations < MinIterations || iterations > MaxIterations)
        {
            error = $"iterations must be a number from {MinIterations} to {MaxIterations}";
            return false;
        }

        var salt = new byte[parts[2].Length];
        var expected = new byte[parts[3].Length];
        if (!Convert.TryFromBase64String(parts[2], salt, out var saltLength) || saltLength < 8 ||
            !Convert.TryFromBase64String(parts[3], expected, out var hashLength) || hashLength < 16 || hashLength > 64)
        {
            error = "salt (at least 8 bytes) and hash (16 to 64 bytes) must be base64";
            return false;
        }

        hash = new PasscodeHash(iterations, salt[..saltLength], expected[..hashLength]);
        error = "";
        return true;
    }
}

/// <summary>A parsed <see cref="PasscodeHasher"/> hash.</summary>
internal sealed class PasscodeHash(int iterations, byte[] salt, byte[] expected)
{
    public int Iterations { get; } = iterations;

    // PBKDF2 of the presented passcode, compared with FixedTimeEquals (the lengths are the configuration's, not the client's).
    public bool Verify(ReadOnlySpan<char> passcode)
    {
        Span<byte> derived = stackalloc byte[expected.Length];
        Rfc2898DeriveBytes.Pbkdf2(passcode, salt, derived, Iterations, HashAlgorithmName.SHA256);
        var equal = CryptographicOperations.FixedTimeEquals(derived, expected);
        CryptographicOperations.ZeroMemory(derived);
        return equal;
    }
}
