using Engine.Protocol;

namespace Engine.Core.Ledger;

/// <summary>
/// A seeded, repeatable stream of encoded request frames over the development instruments: mostly
/// limit orders, with IOC orders, cancels, replaces and a small share of invalid requests, for
/// benchmarks, journal generation and tests. Same seed, same frames.
/// </summary>
public sealed class SyntheticOrderFlow
{
    private readonly Random _random;
    private readonly InstrumentTable _instruments;
    private readonly uint _clientId;
    private ulong _clientSeq;
    private ulong _nextOrderId = 1;

    public SyntheticOrderFlow(int seed, InstrumentTable instruments, uint clientId = 1, double invalidShare = 0.01)
    {
        _random = new Random(seed);
        _instruments = instruments;
        _clientId = clientId;
        InvalidShare = invalidShare;
    }

    public double InvalidShare { get; }

    /// <summary>Writes the next request frame into <paramref name="destination"/>; returns its length.</summary>
    public int Next(Span<byte> destination)
    {
        Transaction tx = NextTransaction(out bool makeInvalid);
        int length = TransactionCodec.Encode(in tx, destination);
        if (makeInvalid)
        {
            destination[Frame.HeaderBytes + 1] ^= 0x5A; // a flipped body byte: the CRC check rejects it
        }
        return length;
    }

    /// <summary>Pre-encodes <paramref name="count"/> frames, each padded to <see cref="TransactionCodec.MaxFrameBytes"/>.</summary>
    public (byte[] Frames, int[] Lengths) Encode(int count)
    {
        var frames = new byte[count * TransactionCodec.MaxFrameBytes];
        var lengths = new int[count];
        for (int i = 0; i < count; i++)
        {
            lengths[i] = Next(frames.AsSpan(i * TransactionCodec.MaxFrameBytes, TransactionCodec.MaxFrameBytes));
        }
        return (frames, lengths);
    }

    private Transaction NextTransaction(out bool makeInvalid)
    {
        makeInvalid = _random.NextDouble() < InvalidShare;
        Instrument instrument = _instruments.All[_random.Next(_instruments.All.Count)];
        ulong seq = ++_clientSeq;
        uint account = (uint)_random.Next(1, 11);
        long price = instrument.TickSize * _random.Next(990, 1011);
        long quantity = _random.Next(1, 100) * 10;
        int kind = _random.Next(100);
        if (kind < 10 && _nextOrderId > 1)
        {
            ulong target = (ulong)_random.NextInt64(1, (long)_nextOrderId);
            return Transaction.Cancel(_clientId, seq, account, instrument.Id, _nextOrderId++, target);
        }
        if (kind < 20 && _nextOrderId > 1)
        {
            ulong target = (ulong)_random.NextInt64(1, (long)_nextOrderId);
            return Transaction.Replace(_clientId, seq, account, instrument.Id, _nextOrderId++, target, price, quantity);
        }
        var side = _random.Next(2) == 0 ? Side.Buy : Side.Sell;
        var tif = kind < 30 ? TimeInForce.Ioc : TimeInForce.Gtc;
        return Transaction.NewOrder(_clientId, seq, account, instrument.Id, _nextOrderId++, side, OrderType.Limit, tif, price, quantity);
    }
}
