using System.Buffers.Text;
using Microsoft.Win32.SafeHandles;

namespace Broker.Resources;

/// <summary>
/// The resident set size (RSS), what the kernel (and a container's OOM killer) holds against the process and what
/// RabbitMQ's memory monitor compares with its high watermark by default. On Linux, the second field of
/// <c>/proc/self/statm</c> (pages), read from a handle kept open, into a stack buffer: one small read, no allocation.
/// Elsewhere <see cref="Environment.WorkingSet"/>, which is the same figure but builds a <c>Process</c> each time.
/// </summary>
internal sealed class ProcessMemoryProbe : IProcessMemoryProbe, IDisposable
{
    private readonly SafeFileHandle? _statm = OpenStatm();
    private readonly long _pageSize = Environment.SystemPageSize;

    public long ResidentBytes()
    {
        if (_statm is not null)
        {
            Span<byte> buffer = stackalloc byte[256];
            try
            {
                // "size resident shared text lib data dt", in pages.
                var line = buffer[..RandomAccess.Read(_statm, buffer, 0)];
                var space = line.IndexOf((byte)' ');
                if (space > 0 && Utf8Parser.TryParse(line[(space + 1)..], out long pages, out _))
                {
                    return pages * _pageSize;
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                // Fall through to the portable figure (also once the handle was closed at shutdown).
            }
        }

        return Environment.WorkingSet;
    }

    // Aggressive: blocking and compacting (the large object heap too), and the GC decommits what it freed, which a
    // forced collection leaves committed for later allocations; only that lowers the RSS.
    public void Collect() => GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);

    public void Dispose() => _statm?.Dispose();

    private static SafeFileHandle? OpenStatm()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            return File.OpenHandle("/proc/self/statm");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
