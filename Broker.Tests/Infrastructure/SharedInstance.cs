namespace Broker.Tests;

/// <summary>
/// One instance of an expensive test server for the whole run, started on first use (tests isolate by
/// key prefix or name) and stopped at the end.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Held in a static field for the whole run.")]
internal sealed class SharedInstance<T>(Func<Task<T>> start)
    where T : class, IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private T? _instance;

    public async Task<T> GetAsync()
    {
        await _gate.WaitAsync();
        try
        {
            return _instance ??= await start();
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task StopAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_instance is not null)
            {
                await _instance.DisposeAsync();
                _instance = null;
            }
        }
        finally
        {
            _gate.Release();
        }
    }
}
