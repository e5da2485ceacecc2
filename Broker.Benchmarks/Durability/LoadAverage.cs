namespace Broker.Benchmarks.Durability;

/// <summary>The machine's load average (Linux), printed with results: the machine is shared.</summary>
internal static class LoadAverage
{
    public static string Read()
    {
        try
        {
            var fields = File.ReadAllText("/proc/loadavg").Split(' ');
            return string.Join(' ', fields.Take(3)) + $" ({Environment.ProcessorCount} cores)";
        }
        catch (IOException)
        {
            return "unknown";
        }
        catch (UnauthorizedAccessException)
        {
            return "unknown";
        }
    }
}
