using System.Security.Cryptography;
using System.Text;

namespace Broker.Security;

/// <summary>
/// The configured users (<c>Broker:Users</c>, login → passcode or <see cref="PasscodeHasher"/> hash), parsed
/// once. Every check takes about the same time whether the login exists or not: plain passcodes compare
/// SHA-256 digests with FixedTimeEquals (so not even the length shows), an unknown login pays for a hash.
/// Hash checks run at most <c>Broker:LoginThrottling:MaxConcurrentPasscodeChecks</c> at a time.
/// </summary>
internal sealed class CredentialStore : IDisposable
{
    private readonly Dictionary<string, Credential> _users = new(StringComparer.Ordinal);
    private readonly PasscodeHash? _unknownUser;
    private readonly SemaphoreSlim _hashSlots;

    public CredentialStore(IReadOnlyDictionary<string, string> users, int maxConcurrentChecks)
    {
        var plain = new List<string>();
        foreach (var (login, passcode) in users)
        {
            if (PasscodeHasher.IsHash(passcode))
            {
                if (!PasscodeHasher.TryParse(passcode, out var hash, out var error))
                {
                    // The login is safe to show; the value is not.
                    throw new InvalidOperationException($"Broker:Users:{login}: the passcode hash is malformed: {error}");
                }

                _users[login] = new Credential(null, hash);
                if (_unknownUser is null || hash.Iterations > _unknownUser.Iterations)
                {
                    _unknownUser = hash;
                }
            }
            else
            {
                _users[login] = new Credential(SHA256.HashData(Encoding.UTF8.GetBytes(passcode)), null);
                plain.Add(login);
            }
        }

        plain.Sort(StringComparer.Ordinal);
        PlainLogins = plain;
        var slots = maxConcurrentChecks > 0 ? maxConcurrentChecks : Math.Max(1, Environment.ProcessorCount / 2);
        _hashSlots = new SemaphoreSlim(slots, slots);
    }

    /// <summary>Logins whose passcode is configured as plain text.</summary>
    public IReadOnlyList<string> PlainLogins { get; }

    public int Count => _users.Count;

    public async ValueTask<bool> VerifyAsync(string login, string passcode, CancellationToken cancellationToken)
    {
        if (!_users.TryGetValue(login, out var credential))
        {
            // The same work as a known login, so the time does not tell which logins exist.
            if (_unknownUser is not null)
            {
                await VerifyHashAsync(_unknownUser, passcode, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                VerifyPlain(s_nobody, passcode);
            }

            return false;
        }

        return credential.Hash is { } hash
            ? await VerifyHashAsync(hash, passcode, cancellationToken).ConfigureAwait(false)
            : VerifyPlain(credential.PlainDigest!, passcode);
    }

    private static readonly byte[] s_nobody = SHA256.HashData(RandomNumberGenerator.GetBytes(32));

    private static bool VerifyPlain(byte[] expectedDigest, string passcode)
    {
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        var bytes = Encoding.UTF8.GetBytes(passcode);
        SHA256.HashData(bytes, digest);
        CryptographicOperations.ZeroMemory(bytes);
        return CryptographicOperations.FixedTimeEquals(digest, expectedDigest);
    }

    private async ValueTask<bool> VerifyHashAsync(PasscodeHash hash, string passcode, CancellationToken cancellationToken)
    {
        await _hashSlots.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return hash.Verify(passcode);
        }
        finally
        {
            _hashSlots.Release();
        }
    }

    public void Dispose() => _hashSlots.Dispose();

    private sealed record Credential(byte[]? PlainDigest, PasscodeHash? Hash);
}
