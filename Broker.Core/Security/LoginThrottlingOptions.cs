namespace Broker.Security;

/// <summary>
/// Failed-login throttling, section <c>Broker:LoginThrottling</c>. Failures are counted per client address
/// and per login; each attempt waits longer once a key has failed <see cref="FreeAttempts"/> times
/// (0, 0, 1 s, 2 s, 4 s ... <see cref="MaxDelay"/>), and a key that reaches its failure limit is refused for
/// <see cref="LockoutDuration"/>. A key with no failure for <see cref="Window"/> starts again from zero.
/// </summary>
public sealed class LoginThrottlingOptions
{
    public bool Enabled { get; set; } = true;

    /// <summary>Failures a key may have before its attempts are delayed.</summary>
    public int FreeAttempts { get; set; } = 2;

    /// <summary>The first delay; each further failure doubles it.</summary>
    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest delay. Keep it well under <c>Broker:ConnectTimeout</c>, which also runs while a CONNECT waits.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Failures of one login before it is refused for <see cref="LockoutDuration"/>.</summary>
    public int MaxFailuresPerLogin { get; set; } = 10;

    /// <summary>Failures from one address (an IPv6 address counts by its /64) before it is refused for <see cref="LockoutDuration"/>. Higher than per login: many users may share an address.</summary>
    public int MaxFailuresPerAddress { get; set; } = 30;

    /// <summary>How long failures are remembered after the last one.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How long a key that reached its failure limit is refused; after it, each failure refuses it again.</summary>
    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Most addresses and logins tracked at once (limit name <c>max-tracked-logins</c>); the least recently seen is forgotten first.</summary>
    public int MaxTrackedEntries { get; set; } = 10_000;

    /// <summary>
    /// Most attempts per login and per address waiting for a turn (limit name <c>max-waiting-logins</c>). Attempts of one key run
    /// at once only while even all of them failing would stay within <see cref="FreeAttempts"/>; the rest wait (asynchronously,
    /// at most <c>Broker:ConnectTimeout</c>) for one to end, and past this many are refused.
    /// </summary>
    public int MaxWaitingAttempts { get; set; } = 1_000;

    /// <summary>Most hashed-passcode checks computed at once (each is ~0.1 s of CPU); the others wait without holding a thread. 0 = half the processors.</summary>
    public int MaxConcurrentPasscodeChecks { get; set; }
}
