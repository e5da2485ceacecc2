using System.Globalization;
using Microsoft.Extensions.Options;

namespace Broker.Relay.RabbitMq;

/// <summary>Checks the relay's settings when the host starts; each failure names the setting, its value and what is expected.</summary>
internal sealed class RabbitMqRelayOptionsValidator : IValidateOptions<RabbitMqRelayOptions>
{
    private const string Section = "Broker:Relay:RabbitMq";

    public ValidateOptionsResult Validate(string? name, RabbitMqRelayOptions options)
    {
        var failures = new List<string>();
        if (!System.Uri.TryCreate(options.Uri, UriKind.Absolute, out var uri) || uri.Scheme is not ("amqp" or "amqps") || string.IsNullOrEmpty(uri.Host))
        {
            // The URI may hold a password: show its scheme and host part only when it parses at all.
            failures.Add($"{Section}:Uri is not an AMQP URI; expected 'amqp://user:password@host:5672/vhost' (or amqps://)");
        }

        Positive(failures, nameof(options.Connections), options.Connections);
        Positive(failures, nameof(options.PublishChannelsPerConnection), options.PublishChannelsPerConnection);
        Positive(failures, nameof(options.MaxUnconfirmedPerChannel), options.MaxUnconfirmedPerChannel);
        Positive(failures, nameof(options.MaxHeaderBytes), options.MaxHeaderBytes);
        Positive(failures, nameof(options.DefaultPrefetch), options.DefaultPrefetch);
        Positive(failures, nameof(options.MaxDurableChannelsPerConnection), options.MaxDurableChannelsPerConnection);
        Positive(failures, nameof(options.ReconnectDelay), options.ReconnectDelay);
        Positive(failures, nameof(options.MaxReconnectDelay), options.MaxReconnectDelay);
        Positive(failures, nameof(options.UnavailableWait), options.UnavailableWait);
        Positive(failures, nameof(options.RequestTimeout), options.RequestTimeout);
        if (options.Heartbeat < TimeSpan.Zero)
        {
            failures.Add(Describe(nameof(options.Heartbeat), options.Heartbeat, "zero (off) or more"));
        }

        if (options.DurableQueueExpiry is { } expiry && expiry <= TimeSpan.Zero)
        {
            failures.Add(Describe(nameof(options.DurableQueueExpiry), expiry, "a positive time span"));
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void Positive(List<string> failures, string setting, int value)
    {
        if (value <= 0)
        {
            failures.Add(Describe(setting, value, "a positive number"));
        }
    }

    private static void Positive(List<string> failures, string setting, TimeSpan value)
    {
        if (value <= TimeSpan.Zero)
        {
            failures.Add(Describe(setting, value, "a positive time span such as '00:00:05'"));
        }
    }

    private static string Describe(string setting, object value, string expected) =>
        string.Create(CultureInfo.InvariantCulture, $"{Section}:{setting} is '{value}'; expected {expected}");
}
