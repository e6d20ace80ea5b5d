using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using Engine.Core.Book;
using Engine.Protocol;

namespace Engine.Tests.Book;

/// <summary>
/// <see cref="Exchange.WriteSnapshot"/> and <see cref="Exchange.ReadSnapshot"/>: a state loaded from a
/// snapshot goes on exactly as the one it was taken from, and a snapshot is read as hostile input.
/// </summary>
public class ExchangeSnapshotTests
{
    // Header, books, the first book's instrument and last trade price, its bid levels, the first level's price and orders, then the order's fields before its account.
    // The reference data of ExchangePropertyTests.Reference(): one instrument, one account, three clients of one account range each.
    private const int ReferenceBytes = (4 + 33) + (4 + 24) + (4 + (3 * (9 + 8)));
    private const int BooksOffset = 108 + ReferenceBytes;
    private const int FirstOrderAccountOffset = BooksOffset + 4 + 4 + 8 + 4 + 8 + 4 + 36;

    private static Hash32 BlockHash(ulong blockNo) => Hash32.From(SHA256.HashData(BitConverter.GetBytes(blockNo)));

    /// <summary>Applies <paramref name="flow"/>[from..to) as blocks of ten, recording every answer and report.</summary>
    private static void Apply(Exchange exchange, List<Transaction> flow, int from, int to, Outcomes outcomes)
    {
        var sink = new RecordingSink(outcomes);
        for (int i = from; i < to; i++)
        {
            ulong lsn = (ulong)i + 1;
            exchange.Apply(flow[i], lsn, BlockOf(lsn), BlockHash(BlockOf(lsn)), ref sink);
        }
    }

    private static ulong BlockOf(ulong lsn) => 1 + ((lsn - 1) / 10);

    private static byte[] Snapshot(Exchange exchange, ulong blockNo)
    {
        var buffer = new ArrayBufferWriter<byte>();
        exchange.WriteSnapshot(buffer, blockNo, BlockHash(blockNo));
        return buffer.WrittenSpan.ToArray();
    }

    [TestCase(1, 0)]
    [TestCase(1, 1)]
    [TestCase(2, 2_500)]
    [TestCase(3, 4_000)]
    [TestCase(4, 5_999)]
    public void A_state_loaded_from_a_snapshot_goes_on_exactly_as_the_original(int seed, int at)
    {
        List<Transaction> flow = ExchangePropertyTests.Flow(seed, 6_000);
        var original = new Exchange(ExchangePropertyTests.Reference());
        Apply(original, flow, 0, at, new Outcomes());
        byte[] snapshot = Snapshot(original, BlockOf((ulong)Math.Max(at, 1)));

        Exchange loaded = Exchange.ReadSnapshot(snapshot, out SnapshotHeader header);

        Assert.That(loaded.ComputeChecksum(), Is.EqualTo(original.ComputeChecksum()));
        Assert.That(header.StateChecksum, Is.EqualTo(original.ComputeChecksum()));
        Assert.That(header.LastLsn, Is.EqualTo((ulong)at));
        loaded.AssertInvariants();
        var afterOriginal = new Outcomes();
        var afterLoaded = new Outcomes();
        Apply(original, flow, at, flow.Count, afterOriginal);
        Apply(loaded, flow, at, flow.Count, afterLoaded);
        Assert.That(afterLoaded.Replies, Is.EqualTo(afterOriginal.Replies), "every answer after the snapshot, duplicates' included");
        Assert.That(afterLoaded.Reports, Is.EqualTo(afterOriginal.Reports), "every fill and cancel, in the same order (price-time priority kept)");
        Assert.That(loaded.ComputeChecksum(), Is.EqualTo(original.ComputeChecksum()));
        Assert.That(Snapshot(loaded, 600), Is.EqualTo(Snapshot(original, 600)), "and the same snapshot at the end");
    }

    [Test]
    public void A_resent_request_from_before_the_snapshot_gets_its_original_answer()
    {
        List<Transaction> flow = ExchangePropertyTests.Flow(5, 1_000);
        var original = new Exchange(ExchangePropertyTests.Reference());
        Apply(original, flow, 0, 1_000, new Outcomes());
        Exchange loaded = Exchange.ReadSnapshot(Snapshot(original, 100), out _);
        for (int i = 990; i < 1_000; i++)
        {
            Assert.That(loaded.TryGetOutcome(flow[i].ClientId, flow[i].ClientSeq, out Outcome got), Is.True);
            original.TryGetOutcome(flow[i].ClientId, flow[i].ClientSeq, out Outcome expected);
            Assert.That((got.Lsn, got.BlockNo, got.BlockHash, got.Reason), Is.EqualTo((expected.Lsn, expected.BlockNo, expected.BlockHash, expected.Reason)));
        }
    }

    [Test]
    public void Any_damaged_byte_is_refused()
    {
        var exchange = new Exchange(ExchangePropertyTests.Reference());
        Apply(exchange, ExchangePropertyTests.Flow(6, 300), 0, 300, new Outcomes());
        byte[] snapshot = Snapshot(exchange, 30);
        for (int i = 0; i < snapshot.Length; i += 1 + (i / 64))
        {
            byte[] damaged = (byte[])snapshot.Clone();
            damaged[i] ^= 0x10;
            Assert.That(() => Exchange.ReadSnapshot(damaged, out _), Throws.InstanceOf<InvalidDataException>(), $"byte {i}");
        }
        Assert.That(() => Exchange.ReadSnapshot(snapshot.AsSpan(0, 50), out _), Throws.InstanceOf<InvalidDataException>(), "cut short");
    }

    /// <summary>A forger recomputes the trailing digest: the contents are still checked, each with its reason.</summary>
    [TestCase("account", FirstOrderAccountOffset, 99u, "account 99")]
    [TestCase("version", 8, 1u, "version 1")]
    [TestCase("version", 8, 2u, "version 2")]
    [TestCase("tick", 108 + 4 + 4 + 8, 0u, "tick 0")]
    [TestCase("halted", 108 + 4 + 32, 2u, "halted 2")]
    [TestCase("account limits", 108 + 37 + 4 + 4, 0xFFFF_FFFFu, "BadReferenceData")]
    [TestCase("client id", 108 + 37 + 28 + 4 + 17, 1u, "id 1 after 1")]
    [TestCase("account range", 108 + 37 + 28 + 4 + 9, 7u, "7-2")]
    [TestCase("state checksum", 56, 0xDEADu, "checksum")]
    [TestCase("leaves", FirstOrderAccountOffset - 20, 0u, "leaves 0")]
    [TestCase("resting orders", 104, 1u, "the header says 1")]
    [TestCase("last trade price", BooksOffset + 4 + 4 + 4, 0xFFFF_FFFFu, "last trade price")]
    public void A_forged_snapshot_with_a_valid_digest_is_still_refused(string field, int offset, uint value, string reason)
    {
        var exchange = new Exchange(ExchangePropertyTests.Reference());
        Apply(exchange, ExchangePropertyTests.Flow(7, 400), 0, 400, new Outcomes());
        byte[] snapshot = Snapshot(exchange, 40);
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(snapshot.AsSpan(BooksOffset + 4 + 4 + 8)), Is.Not.Zero, "the first book has bids, so the offset names its first order");
        BinaryPrimitives.WriteUInt32LittleEndian(snapshot.AsSpan(offset), value);
        SHA256.HashData(snapshot.AsSpan(0, snapshot.Length - 32), snapshot.AsSpan(snapshot.Length - 32));

        Assert.That(() => Exchange.ReadSnapshot(snapshot, out _),
            Throws.InstanceOf<InvalidDataException>().With.Message.Contains(reason), field);
    }

    [Test]
    public void An_empty_state_round_trips()
    {
        var empty = new Exchange(ExchangePropertyTests.Reference());
        Exchange loaded = Exchange.ReadSnapshot(Snapshot(empty, 0), out SnapshotHeader header);
        Assert.That(loaded.ComputeChecksum(), Is.EqualTo(empty.ComputeChecksum()));
        Assert.That(header.BlockNo, Is.Zero);
    }
}
