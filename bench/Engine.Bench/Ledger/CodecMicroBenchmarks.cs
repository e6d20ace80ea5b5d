using BenchmarkDotNet.Attributes;
using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Bench.Ledger;

/// <summary>Per-order costs of the codec and the chain, with allocations: the budget of issue 3 (encode + decode ≤ 50 ns).</summary>
[MemoryDiagnoser]
public class CodecMicroBenchmarks
{
    private readonly byte[] _frame = new byte[TransactionCodec.MaxFrameBytes];
    private readonly byte[] _record = new byte[LedgerRecord.Bytes];
    private readonly InstrumentTable _instruments = InstrumentTable.Development();
    private Transaction _order;
    private int _length;

    [GlobalSetup]
    public void Setup()
    {
        _order = Transaction.NewOrder(7, 1, 3, 2, 100, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 5000, 10);
        _length = TransactionCodec.Encode(in _order, _frame);
    }

    [Benchmark(Description = "encode new order")]
    public int Encode() => TransactionCodec.Encode(in _order, _frame);

    [Benchmark(Description = "decode + validate new order")]
    public RejectReason Decode()
    {
        RejectReason reason = TransactionCodec.Decode(_frame.AsSpan(0, _length), out Transaction tx);
        return reason != RejectReason.None ? reason : _instruments.Check(in tx);
    }

    [Benchmark(Baseline = true, Description = "encode + decode new order")]
    public RejectReason RoundTrip()
    {
        int length = TransactionCodec.Encode(in _order, _frame);
        return TransactionCodec.Decode(_frame.AsSpan(0, length), out _);
    }

    [Benchmark(Description = "ledger record write")]
    public void Record() => LedgerRecord.Write(in _order, 42, _record);
}
