using Broker.Relay.RabbitMq;
using Broker.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Broker;

/// <summary><c>services.AddStompBroker(...).AddRabbitMqRelay(o => o.Uri = "amqp://...")</c>: RabbitMQ moves the messages.</summary>
public static class RabbitMqRelayExtensions
{
    /// <summary>
    /// Replaces the in-process broker with the RabbitMQ relay. It connects when the host starts (or on
    /// first use) and keeps retrying in the background while RabbitMQ is unreachable.
    /// </summary>
    public static IStompBrokerBuilder AddRabbitMqRelay(this IStompBrokerBuilder builder, Action<RabbitMqRelayOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<RabbitMqRelayOptions>().ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RabbitMqRelayOptions>, RabbitMqRelayOptionsValidator>());
        if (configure is not null)
        {
            options.Configure(configure);
        }

        builder.Services.TryAddSingleton<RabbitMqRelay>();
        builder.Services.RemoveAll<IMessageBroker>();
        builder.Services.AddSingleton<IMessageBroker>(sp => sp.GetRequiredService<RabbitMqRelay>());
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RabbitMqRelayHost>());
        return builder;
    }
}

/// <summary>Starts the relay's connections with the host, so the first client does not wait for them.</summary>
internal sealed class RabbitMqRelayHost(RabbitMqRelay relay) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        relay.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
