using System.Buffers;
using System.Collections.Concurrent;

namespace Broker.Hosting;

/// <summary>
/// The WebSocket input pipes' 4 KiB blocks, kept for reuse. A block is rented when bytes arrive and returned as soon
/// as the session has read them, so on a node of quiet connections (a heart-beat now and then) few are out at
/// once. With <see cref="ArrayPool{T}.Shared"/>, which the pipes used before, 5,000 connections with 10 s heart-beats
/// allocated a new 4 KiB array for about a third of the heart-beats received (1.4 KiB of garbage per heart-beat on
/// average, three quarters of the node's allocation), which refilled the GC's allocation budget between collections. At most <see cref="MaxKept"/> blocks are
/// kept (4 MiB); a pipe asking for more than one block's size gets an array from the shared pool as before.
/// </summary>
internal sealed class BlockPool : MemoryPool<byte>
{
    public const int BlockSize = 4096;
    public const int MaxKept = 1024;

    public static readonly BlockPool Instance = new();

    private readonly ConcurrentQueue<Block> _kept = new();
    private int _count;

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (_kept.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _count);
            block.Rented = true;
            return block;
        }

        return new Block(this) { Rented = true };
    }

    protected override void Dispose(bool disposing)
    {
    }

    private void Return(Block block)
    {
        if (Interlocked.Increment(ref _count) <= MaxKept)
        {
            _kept.Enqueue(block);
        }
        else
        {
            Interlocked.Decrement(ref _count);
        }
    }

    private sealed class Block(BlockPool pool) : IMemoryOwner<byte>
    {
        private readonly byte[] _array = GC.AllocateUninitializedArray<byte>(BlockSize);

        public bool Rented { get; set; }

        public Memory<byte> Memory => _array;

        public void Dispose()
        {
            if (Rented)
            {
                Rented = false;
                pool.Return(this);
            }
        }
    }
}
