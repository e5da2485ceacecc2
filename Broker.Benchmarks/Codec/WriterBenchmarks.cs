using System.Buffers;
using BenchmarkDotNet.Attributes;

namespace Broker.Benchmarks.Codec;

/// <summary><see cref="Broker.Protocol.StompFrameWriter"/> into a reused buffer. Times are per frame.</summary>
[MemoryDiagnoser]
public class WriterBenchmarks
{
    private readonly ArrayBufferWriter<byte> _output = new(1 << 20);
    private byte[] _body = [];

    [Params(FrameKind.Send128, FrameKind.Send4K, FrameKind.Message128)]
    public FrameKind Kind { get; set; }

    [GlobalSetup]
    public void Setup() => _body = CodecFrames.Body(Kind);

    [Benchmark(Baseline = true)]
    public int WriteOne()
    {
        _output.ResetWrittenCount();
        CodecFrames.Write(Kind, _output, _body);
        return _output.WrittenCount;
    }

    [Benchmark(OperationsPerInvoke = CodecFrames.Batch)]
    public int WriteBatch()
    {
        _output.ResetWrittenCount();
        for (var i = 0; i < CodecFrames.Batch; i++)
        {
            CodecFrames.Write(Kind, _output, _body);
        }

        return _output.WrittenCount;
    }
}
