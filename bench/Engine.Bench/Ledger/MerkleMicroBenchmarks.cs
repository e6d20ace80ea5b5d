using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Engine.Protocol;

namespace Engine.Bench.Ledger;

/// <summary>
/// What a records root costs per record: a leaf hash (65 bytes) and, amortised, a node hash (65
/// bytes), against .NET's SHA-256 of the same 65 bytes (the baseline: OpenSSL's EVP path) and the
/// bulk SHA-256 a block already pays per record.
/// </summary>
[MemoryDiagnoser]
public class MerkleMicroBenchmarks
{
    private readonly byte[] _record = new byte[LedgerRecord.Bytes];
    private readonly byte[] _leafInput = new byte[1 + LedgerRecord.Bytes];
    private readonly byte[] _block = new byte[1000 * LedgerRecord.Bytes];
    private readonly byte[] _hash = new byte[32];
    private readonly Hash32[] _leaves = new Hash32[1000];
    private Hash32 _left;
    private Hash32 _right;

    [GlobalSetup]
    public void Setup()
    {
        new Random(5).NextBytes(_record);
        _left = Merkle.LeafHash([1]);
        _right = Merkle.LeafHash([2]);
        for (int i = 0; i < _leaves.Length; i++)
        {
            _leaves[i] = Merkle.LeafHash(BitConverter.GetBytes(i));
        }
    }

    [Benchmark(Baseline = true, Description = "SHA256.HashData, 65 bytes")]
    public int DotnetSmallHash() => SHA256.HashData(_leafInput, _hash);

    [Benchmark(Description = "Merkle leaf hash of a record")]
    public Hash32 LeafHash() => Merkle.LeafHash(_record);

    [Benchmark(Description = "Merkle node hash")]
    public Hash32 NodeHash() => Merkle.NodeHash(in _left, in _right);

    [Benchmark(Description = "root of 1,000 leaf hashes, per leaf", OperationsPerInvoke = 1000)]
    public Hash32 RootPerLeaf() => Merkle.Root(_leaves);

    [Benchmark(Description = "bulk SHA-256 of a 1,000-record block, per record", OperationsPerInvoke = 1000)]
    public int BulkPerRecord() => SHA256.HashData(_block, _hash);
}
