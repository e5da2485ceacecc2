using StackExchange.Redis;

namespace Broker.Durability;

/// <summary>
/// The one place that connects to Redis (StackExchange.Redis), so that the client version can
/// move without touching the stores. Connects lazily; with <c>abortConnect=false</c> the multiplexer
/// keeps reconnecting in the background, and commands fail at once while it is disconnected.
/// </summary>
internal sealed class RedisConnection : IDisposable
{
    private readonly ConfigurationOptions _configuration;
    private readonly Lazy<Task<ConnectionMultiplexer>> _multiplexer;

    /// <param name="backlogPolicy">
    /// What a command does while the connection is down; null keeps the client's default. The cluster broker
    /// passes <see cref="BacklogPolicy.FailFast"/>: its message path must not queue behind a dead connection.
    /// </param>
    public RedisConnection(string configuration, TimeSpan connectTimeout, TimeSpan operationTimeout, BacklogPolicy? backlogPolicy = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(configuration);
        _configuration = ConfigurationOptions.Parse(configuration);
        _configuration.AbortOnConnectFail = false;
        _configuration.ConnectTimeout = ToMilliseconds(connectTimeout);
        _configuration.SyncTimeout = ToMilliseconds(operationTimeout);
        _configuration.AsyncTimeout = ToMilliseconds(operationTimeout);
        _configuration.ConnectRetry = 1;
        if (backlogPolicy is not null)
        {
            _configuration.BacklogPolicy = backlogPolicy;
        }

        Endpoints = string.Join(",", _configuration.EndPoints.Select(e => e.ToString()));
        _multiplexer = new(ConnectAsync, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>Whether <paramref name="configuration"/> is a configuration string StackExchange.Redis accepts with at least one endpoint.</summary>
    public static bool TryParse(string configuration, out string? problem)
    {
        try
        {
            problem = ConfigurationOptions.Parse(configuration).EndPoints.Count == 0 ? "no endpoint" : null;
        }
        catch (ArgumentException ex)
        {
            // The message names the bad option, never the password's value.
            problem = ex.Message;
        }

        return problem is null;
    }

    /// <summary>The configured endpoints, for messages (the configuration string may hold a password).</summary>
    public string Endpoints { get; }

    public async Task<IDatabase> GetDatabaseAsync()
    {
        var multiplexer = await _multiplexer.Value.ConfigureAwait(false);
        return multiplexer.GetDatabase();
    }

    /// <summary>The multiplexer itself, for pub/sub and connection events (the cluster broker).</summary>
    public Task<ConnectionMultiplexer> GetMultiplexerAsync() => _multiplexer.Value;

    private async Task<ConnectionMultiplexer> ConnectAsync()
    {
        return await ConnectionMultiplexer.ConnectAsync(_configuration).ConfigureAwait(false);
    }

    public void Dispose()
    {
        if (_multiplexer.IsValueCreated && _multiplexer.Value.IsCompletedSuccessfully)
        {
            _multiplexer.Value.Result.Dispose();
        }
    }

    private static int ToMilliseconds(TimeSpan value) => (int)Math.Clamp(value.TotalMilliseconds, 1, int.MaxValue);
}
