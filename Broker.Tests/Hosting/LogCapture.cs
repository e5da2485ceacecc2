using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Broker.Tests.Hosting;

/// <summary>Keeps every log line a server writes ("Level Category: message"), so tests can wait for one.</summary>
internal sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly SemaphoreSlim _added = new(0);

    public IReadOnlyCollection<string> Lines => _lines;

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public int Count(Func<string, bool> match) => _lines.Count(match);

    /// <summary>Waits until a line matches; throws with every line seen when none does in time.</summary>
    public async Task<string> WaitForAsync(Func<string, bool> match, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? StompTestClient.DefaultTimeout);
        while (true)
        {
            var line = _lines.FirstOrDefault(match);
            if (line is not null)
            {
                return line;
            }

            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !await _added.WaitAsync(left))
            {
                throw new TimeoutException($"{what}: no such log line\n{string.Join('\n', _lines)}");
            }
        }
    }

    public void Dispose() => _added.Dispose();

    private void Add(string line)
    {
        _lines.Enqueue(line);
        _added.Release();
    }

    private sealed class Logger(LogCapture capture, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                capture.Add($"{logLevel} {category}: {formatter(state, exception)}");
            }
        }
    }
}
