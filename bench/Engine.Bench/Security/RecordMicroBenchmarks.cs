using BenchmarkDotNet.Attributes;
using Engine.Security;

namespace Engine.Bench.Security;

/// <summary>
/// The secure channel's cost per record, without the socket: seal (AES-256-GCM encrypt, length as
/// associated data, counter nonce) and open (decrypt in place, check the tag) of one record. The
/// mirror seals one record per write batch, so a batch of many blocks pays this once.
/// </summary>
[MemoryDiagnoser]
public class RecordMicroBenchmarks
{
    private RecordCipher _sealer = null!;
    private RecordCipher _opener = null!;
    private byte[] _plaintext = null!;
    private byte[] _record = null!;

    [Params(64, 64 << 10)]
    public int Bytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var key = new byte[32];
        new Random(1).NextBytes(key);
        _sealer = new RecordCipher((byte[])key.Clone());
        _opener = new RecordCipher((byte[])key.Clone());
        _plaintext = new byte[Bytes];
        new Random(2).NextBytes(_plaintext);
        _record = new byte[Bytes + RecordCipher.OverheadBytes];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _sealer.Dispose();
        _opener.Dispose();
    }

    /// <summary>What an unauthenticated link does with the same bytes: copy them into the send buffer and CRC them (the frame check).</summary>
    [Benchmark(Baseline = true, Description = "copy + CRC-32C (no authentication)")]
    public uint CopyAndCrc()
    {
        _plaintext.CopyTo(_record.AsSpan(RecordCipher.HeaderBytes));
        return Engine.Protocol.Crc32C.Compute(_record.AsSpan(RecordCipher.HeaderBytes, Bytes));
    }

    [Benchmark(Description = "seal + open one record")]
    public bool SealAndOpen()
    {
        int length = _sealer.Seal(_plaintext, _record);
        Span<byte> record = _record.AsSpan(0, length);
        return _opener.TryOpen(record[..RecordCipher.HeaderBytes], record.Slice(RecordCipher.HeaderBytes, Bytes), record[(RecordCipher.HeaderBytes + Bytes)..]);
    }
}
