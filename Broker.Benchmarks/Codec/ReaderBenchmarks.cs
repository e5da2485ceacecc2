using System.Buffers;
using BenchmarkDotNet.Attributes;
using Broker.Protocol;

namespace Broker.Benchmarks.Codec;

/// <summary>
/// <see cref="StompFrameReader"/> over one frame, and over a buffer of <see cref="CodecFrames.Batch"/>
/// frames (contiguous, and in 4 KiB segments as a pipe would hold them). Times are per frame.
/// </summary>
[MemoryDiagnoser]
public class ReaderBenchmarks
{
    private readonly StompFrameReader _reader = new();
    private readonly StompFrame _frame = new();
    private ReadOnlySequence<byte> _one;
    private ReadOnlySequence<byte> _batch;
    private ReadOnlySequence<byte> _batchSegmented;

    [Params(FrameKind.Send128, FrameKind.Send4K, FrameKind.Message128)]
    public FrameKind Kind { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _one = new ReadOnlySequence<byte>(CodecFrames.Bytes(Kind, 1));
        var batch = CodecFrames.Bytes(Kind, CodecFrames.Batch);
        _batch = new ReadOnlySequence<byte>(batch);
        _batchSegmented = CodecFrames.Segmented(batch, 4096);

        // Check once that what is measured is what is meant: every frame read, nothing left.
        if (ReadAll(_batch) != CodecFrames.Batch * (Kind == FrameKind.Send4K ? 4096L : 128L)
            || ReadAll(_batchSegmented) != CodecFrames.Batch * (Kind == FrameKind.Send4K ? 4096L : 128L))
        {
            throw new InvalidOperationException("the benchmark frames do not read back");
        }

        // Warm the frame's header storage, so its one-off growth is not counted as per-frame allocation.
        ReadOne();
    }

    [Benchmark(Baseline = true)]
    public long ReadOne()
    {
        var buffer = _one;
        _reader.TryRead(ref buffer, _frame);
        return _frame.Body.Length;
    }

    [Benchmark(OperationsPerInvoke = CodecFrames.Batch)]
    public long ReadBatch() => ReadAll(_batch);

    [Benchmark(OperationsPerInvoke = CodecFrames.Batch)]
    public long ReadBatchSegmented() => ReadAll(_batchSegmented);

    private long ReadAll(ReadOnlySequence<byte> buffer)
    {
        long bodies = 0;
        while (_reader.TryRead(ref buffer, _frame))
        {
            bodies += _frame.Body.Length;
        }

        return bodies;
    }
}
