namespace Broker.Server.Admin;

/// <summary>
/// The HTTP API and the admin dashboard: section <c>Broker:Api</c> (env <c>Broker__Api__Key</c>, <c>--Broker:Api:Key</c>).
/// Off unless <see cref="Key"/> is set.
/// </summary>
internal sealed class AdminApiSettings
{
    public const string SectionName = "Broker:Api";

    /// <summary>Shortest key accepted: a bearer secret must not be guessable.</summary>
    public const int MinimumKeyLength = 16;

    /// <summary>The bearer key requests to <c>/api/</c> carry (<c>Authorization: Bearer &lt;key&gt;</c>); unset = the API and <c>/admin</c> are off.</summary>
    public string? Key { get; set; }

    public bool Enabled => !string.IsNullOrEmpty(Key);

    /// <summary>Throws, naming the setting (never its value), when a key is set but too weak to be one.</summary>
    public void Validate()
    {
        if (Enabled && Key!.Trim().Length < MinimumKeyLength)
        {
            throw new InvalidOperationException(
                $"{SectionName}:Key is set but has {Key.Trim().Length} characters; expected a random secret of at least {MinimumKeyLength} (for example the output of 'openssl rand -hex 32').");
        }
    }
}
