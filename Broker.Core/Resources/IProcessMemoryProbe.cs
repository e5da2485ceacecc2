namespace Broker.Resources;

/// <summary>The process's own memory, as the memory monitor sees it, and the one way it has of giving some back.</summary>
internal interface IProcessMemoryProbe
{
    /// <summary>The process's resident memory now, in bytes.</summary>
    long ResidentBytes();

    /// <summary>A full, compacting garbage collection that gives freed memory back to the operating system.</summary>
    void Collect();
}
