using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Options;

namespace Broker;

/// <summary>
/// Checks <see cref="StompBrokerOptions"/> when the host starts (not at first use): no limit, size, count or
/// time may be negative, and the few that must be positive are. Each failure names the setting
/// (<c>Broker:MaxFrameSize</c>), its value and what is expected.
/// </summary>
internal sealed class StompBrokerOptionsValidator : IValidateOptions<StompBrokerOptions>
{
    private const string Section = "Broker";

    // Settings where 0 means nothing sensible (0 elsewhere turns a limit or a feature off).
    private static readonly HashSet<string> MustBePositive = new(StringComparer.Ordinal)
    {
        nameof(StompBrokerOptions.MaxFrameSize),
        nameof(StompBrokerOptions.MaxFrameSizeBeforeConnect),
        nameof(StompBrokerOptions.MaxHeaders),
        nameof(StompBrokerOptions.MaxHeaderLineLength),
        nameof(StompBrokerOptions.MaxPendingBytes),
        nameof(StompBrokerOptions.SendTimeout),
        nameof(StompBrokerOptions.ConnectTimeout),
        nameof(StompBrokerOptions.MaxDestinationLength),
        nameof(StompBrokerOptions.MaxDestinationWords),
        nameof(StompBrokerOptions.MaxTransactionBytes),
        nameof(StompBrokerOptions.ConnectionBurstPerAddress),
        nameof(StompBrokerOptions.MaxTrackedConnectionAddresses),
    };

    public ValidateOptionsResult Validate(string? name, StompBrokerOptions options)
    {
        var failures = new List<string>();
        foreach (var property in typeof(StompBrokerOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            var value = property.GetValue(options);
            var positive = MustBePositive.Contains(property.Name);
            var bad = value switch
            {
                int i => positive ? i <= 0 : i < 0,
                long l => positive ? l <= 0 : l < 0,
                double d => double.IsNaN(d) || (positive ? d <= 0 : d < 0),
                TimeSpan t => positive ? t <= TimeSpan.Zero : t < TimeSpan.Zero,
                _ => false,
            };
            if (bad)
            {
                failures.Add(Describe(property.Name, value, positive ? "a positive value" : "zero or more"));
            }
        }

        if (options.MemoryLowWatermark is not (> 0 and <= 1))
        {
            failures.Add(Describe(nameof(options.MemoryLowWatermark), options.MemoryLowWatermark, "a fraction of MemoryLimit, more than 0 and at most 1"));
        }

        if (options.HeartbeatTolerance < 1)
        {
            failures.Add(Describe(nameof(options.HeartbeatTolerance), options.HeartbeatTolerance, "1.0 or more (receive intervals of silence tolerated)"));
        }

        var compaction = options.IdleCompaction;
        if (compaction.Enabled && compaction.QuietPeriod <= TimeSpan.Zero)
        {
            failures.Add(Describe("IdleCompaction:QuietPeriod", compaction.QuietPeriod, "a positive value"));
        }

        if (compaction.MinInterval < TimeSpan.Zero)
        {
            failures.Add(Describe("IdleCompaction:MinInterval", compaction.MinInterval, "zero or more"));
        }

        if (compaction.MinReclaimableBytes < 0)
        {
            failures.Add(Describe("IdleCompaction:MinReclaimableBytes", compaction.MinReclaimableBytes, "zero or more"));
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static string Describe(string setting, object? value, string expected) =>
        string.Create(CultureInfo.InvariantCulture, $"{Section}:{setting} is '{value}'; expected {expected}");
}
