using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;
using Engine.Tests.Support;

namespace Engine.Tests.Ledger;

/// <summary>
/// The seal-ahead topology (one thread: validate, seal, journal gate, apply) keeps several blocks in
/// flight: while the backup has not acknowledged a block, the thread seals and mirrors the requests
/// that arrive after it, and passes them all on, in order, as the acknowledgements come.
/// </summary>
public class SealAheadTests
{
    private TempDirectory _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempDirectory("seal-ahead");

    [TearDown]
    public void TearDown() => _temp.Dispose();

    /// <summary>A backup that acknowledges only what the test says, and wakes the gate as a real link does.</summary>
    private sealed class HeldMirror : IBlockMirror
    {
        private readonly List<ulong> _sent = [];
        private Action? _wake;
        private ulong _acked;

        public bool IsConnected => true;

        public bool MayAcknowledge => true;

        public IReadOnlyList<ulong> Sent
        {
            get
            {
                lock (_sent)
                {
                    return [.. _sent];
                }
            }
        }

        public void Send(ReadOnlySpan<byte> block, in ChainHead sealedHead)
        {
            lock (_sent)
            {
                _sent.Add(sealedHead.BlockNo);
            }
        }

        public void SendStateChecksum(ulong blockNo, Hash32 checksum)
        {
        }

        public bool IsAcknowledged(ulong blockNo, out string? never)
        {
            never = null;
            return blockNo <= Volatile.Read(ref _acked);
        }

        public void OnAckProgress(Action wake) => _wake = wake;

        public void BeginStop()
        {
        }

        public void Acknowledge(ulong blockNo)
        {
            Volatile.Write(ref _acked, blockNo);
            _wake?.Invoke();
        }
    }

    private sealed class Passed
    {
        public long Count;
        public ulong LastBlockNo;
    }

    private struct PassedStage(Passed passed) : IStageHandler<TxSlot>
    {
        public readonly void OnEvent(ref TxSlot slot, long sequence, bool endOfBatch)
        {
            Volatile.Write(ref passed.LastBlockNo, slot.BlockNo);
            Interlocked.Increment(ref passed.Count);
        }
    }

    private static void Publish(RingBuffer<TxSlot> ring, ulong clientSeq)
    {
        Transaction tx = Transaction.NewOrder(7, clientSeq, 1, 1, clientSeq, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 1_000, 10);
        Span<byte> frame = stackalloc byte[TransactionCodec.MaxFrameBytes];
        int length = TransactionCodec.Encode(in tx, frame);
        using var claim = ring.Claim();
        claim.Slot.SessionClientId = 0;
        claim.Slot.Probe = null;
        claim.Slot.Admin = null;
        claim.Slot.SetFrame(frame[..length]);
    }

    [Test]
    public void Requests_arriving_while_a_block_awaits_its_ack_are_sealed_and_mirrored_at_once()
    {
        using Journal journal = Journal.Open(new JournalSettings { Directory = _temp.Sub("j"), MemorySizeBits = 24, PageSizeBits = 20, MaxCommitLagBytes = 1 << 20 });
        var mirror = new HeldMirror();
        ReferenceView reference = ReferenceView.OfInstruments(InstrumentTable.Development());
        var ledger = new LedgerPipeline(new RingSettings { Size = 64 }, journal, () => reference, topology: StageTopology.SealAhead, mirror: mirror);
        var passed = new Passed();
        ledger.AddAfterJournal("passed", new PassedStage(passed));
        ulong first = journal.Head.BlockNo + 1;
        using Pipeline<TxSlot> pipeline = ledger.Builder.Start();

        // One request at a time, each after the one before it is mirrored: one block each.
        for (ulong seq = 1; seq <= 3; seq++)
        {
            Publish(pipeline.Ring, seq);
            ulong expected = first + seq - 1;
            Until.True(() => mirror.Sent.Contains(expected), $"block {expected} sealed and sent to the backup");
        }
        Assert.Multiple(() =>
        {
            Assert.That(mirror.Sent, Is.EqualTo(new[] { first, first + 1, first + 2 }), "three blocks in flight, none acknowledged");
            Assert.That(Interlocked.Read(ref passed.Count), Is.Zero, "nothing passes before its block is acknowledged");
        });

        mirror.Acknowledge(first);
        Until.True(() => Interlocked.Read(ref passed.Count) == 1, "the first request passing on its block's ack");
        mirror.Acknowledge(first + 2);
        Until.True(() => Interlocked.Read(ref passed.Count) == 3, "the other two on theirs");
        Assert.That(Volatile.Read(ref passed.LastBlockNo), Is.EqualTo(first + 2));
    }
}
