using System.Buffers.Binary;
using System.Security.Cryptography;
using CsCheck;
using Engine.Core.Chain;
using Engine.Protocol;

namespace Engine.Tests.Chain;

/// <summary>
/// Records-root sections: the builder writes the root it is handed into the block it opens next, the
/// format refuses a malformed section, and the verifier holds the sections to covering every block
/// once, in order, with the blocks' record counts and (checking roots) the records' Merkle root.
/// </summary>
public class RecordsRootTests
{
    private static readonly ClusterId s_cluster = ClusterId.Parse("0123456789abcdeffedcba9876543210");

    /// <summary>Hands the block being opened the root of every block since the last one handed over, when <see cref="When"/> says so.</summary>
    private sealed class Roots(List<byte[]> entries) : IRecordsRootSource
    {
        public Func<ulong, bool> When { get; init; } = _ => true;

        public Func<RecordsRoot, RecordsRoot> Tamper { get; init; } = r => r;

        public ulong Next { get; set; } = 1;

        public int Given { get; private set; }

        public bool TryTake(out RecordsRoot root)
        {
            ulong opening = (ulong)entries.Count; // entries[i] is block i
            if (opening - 1 < Next || !When(opening))
            {
                root = default;
                return false;
            }
            root = Tamper(RootOf(entries, Next, opening - 1));
            Next = opening;
            Given++;
            return true;
        }
    }

    internal static RecordsRoot RootOf(IReadOnlyList<byte[]> entries, ulong first, ulong last)
    {
        var leaves = new List<Hash32>();
        for (ulong b = first; b <= last; b++)
        {
            Assert.That(BlockFormat.TryReadHeader(entries[(int)b], out BlockHeader header), Is.Null);
            ReadOnlySpan<byte> body = BlockFormat.Body(entries[(int)b], in header);
            for (int at = 0; at < body.Length; at += LedgerRecord.Bytes)
            {
                leaves.Add(Merkle.LeafHash(body.Slice(at, LedgerRecord.Bytes)));
            }
        }
        return new RecordsRoot(first, (uint)(last - first + 1), (uint)leaves.Count, Merkle.Root(leaves.ToArray()));
    }

    /// <summary>A chain of <paramref name="sizes"/>.Length blocks after genesis, block i + 1 holding sizes[i] transactions, roots handed over as <paramref name="roots"/> decides.</summary>
    private static List<byte[]> Build(int[] sizes, Func<List<byte[]>, Roots> roots, out Roots source)
    {
        var entries = new List<byte[]> { BlockBuilder.Genesis(s_cluster, 1, 1_000, out ChainHead genesis) };
        source = roots(entries);
        var builder = new BlockBuilder(genesis, maxTransactionsPerBlock: 16) { RootSource = source };
        ulong seq = 0;
        foreach (int size in sizes)
        {
            for (int i = 0; i < size; i++)
            {
                var tx = Transaction.NewOrder(1, ++seq, 2, 1, seq, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100 + (long)seq, 10);
                builder.Add(in tx);
            }
            entries.Add(builder.Seal(2_000 + entries.Count, out _).ToArray());
        }
        return entries;
    }

    private static BlockFault? VerifyAll(List<byte[]> entries, ChainVerifier verifier, int from = 0)
    {
        for (int i = from; i < entries.Count; i++)
        {
            if (verifier.Check(entries[i], i, out _) is { } fault)
            {
                return fault;
            }
        }
        return null;
    }

    private static int[] Sizes(int blocks) => [.. Enumerable.Range(0, blocks).Select(b => 1 + (b * 7 % 16))];

    [Test]
    public void Sections_cover_every_block_in_order_and_their_roots_verify()
    {
        List<byte[]> entries = Build(Sizes(40), e => new Roots(e) { When = b => b % 3 == 0 }, out Roots roots);
        Assert.That(roots.Given, Is.EqualTo(13), "blocks 3, 6, … 39 took a root");
        Assert.That(BlockFormat.TryReadHeader(entries[3], out BlockHeader header), Is.Null);
        Assert.That(header.HeaderBytes, Is.EqualTo(BlockFormat.HeaderBytes + BlockFormat.SectionBytes));
        Assert.That(BlockFormat.TryReadRecordsRoot(entries[3], in header, out RecordsRoot first), Is.True);
        Assert.That(first, Is.EqualTo(RootOf(entries, 1, 2)), "block 3 carries the root of blocks 1 and 2");
        Assert.That(BlockFormat.TryReadHeader(entries[4], out BlockHeader plain), Is.Null);
        Assert.That(plain.HeaderBytes, Is.EqualTo(BlockFormat.HeaderBytes), "a block that took no root stays small");

        var verifier = new ChainVerifier(s_cluster) { CheckRoots = true };
        Assert.That(VerifyAll(entries, verifier), Is.Null);
        Assert.That(verifier.RootsChecked, Is.EqualTo(13));
        Assert.That((verifier.RootsCoverFrom, verifier.RootsCoverUntil), Is.EqualTo(((ulong?)1, (ulong?)38)));
    }

    [Test]
    public void Any_split_into_sections_verifies_and_a_wrong_root_or_count_is_named()
    {
        Gen.Select(Gen.Int[1, 16].Array[2, 40], Gen.Bool.Array[40], Gen.Int[0, 255]).Sample((sizes, takes, bit) =>
        {
            List<byte[]> entries = Build(sizes, e => new Roots(e) { When = b => takes[(int)b % takes.Length] }, out Roots roots);
            var verifier = new ChainVerifier(s_cluster) { CheckRoots = true };
            if (VerifyAll(entries, verifier) is not null || verifier.RootsChecked != roots.Given)
            {
                return false;
            }
            if (roots.Given == 0)
            {
                return true;
            }
            // The same hand-overs, with the second root's bit flipped or its record count off by one.
            int nth = 0;
            RecordsRoot FlipRoot(RecordsRoot r)
            {
                if (nth++ != Math.Min(1, roots.Given - 1))
                {
                    return r;
                }
                Hash32 root = r.Root;
                ((Span<byte>)root)[bit / 8 % 32] ^= (byte)(1 << (bit % 8));
                return r with { Root = root };
            }
            List<byte[]> flipped = Build(sizes, e => new Roots(e) { When = b => takes[(int)b % takes.Length], Tamper = FlipRoot }, out _);
            BlockFault? wrongRoot = VerifyAll(flipped, new ChainVerifier(s_cluster) { CheckRoots = true });
            bool unchecked_ = VerifyAll(flipped, new ChainVerifier(s_cluster)) is null; // without CheckRoots, only coverage and counts
            nth = 0;
            RecordsRoot MoreRecords(RecordsRoot r) => nth++ == 0 ? r with { Records = r.Records + 1 } : r;
            List<byte[]> miscounted = Build(sizes, e => new Roots(e) { When = b => takes[(int)b % takes.Length], Tamper = MoreRecords }, out _);
            BlockFault? wrongCount = VerifyAll(miscounted, new ChainVerifier(s_cluster));
            return wrongRoot is not null && wrongRoot.Reason.Contains("but the root of those records", StringComparison.Ordinal) && unchecked_
                && wrongCount is not null && wrongCount.Reason.Contains("those blocks hold", StringComparison.Ordinal);
        }, iter: 100);
    }

    [Test]
    public void A_gap_or_an_overlap_between_sections_is_a_fault()
    {
        // Block 4 covers 1…3; block 7 then claims 5…6 (a gap) or 3…6 (an overlap).
        foreach ((ulong from, string named) in new[] { (5UL, "a gap"), (3UL, "an overlap") })
        {
            List<byte[]>? built = null;
            List<byte[]> entries = Build(Sizes(9), e =>
            {
                built = e;
                return new Roots(e) { When = b => b is 4 or 7, Tamper = r => r.FirstBlock == 4 ? RootOf(built!, from, 6) : r };
            }, out _);
            BlockFault? fault = VerifyAll(entries, new ChainVerifier(s_cluster) { CheckRoots = true });
            Assert.That(fault?.BlockNo, Is.EqualTo(7UL), named);
            Assert.That(fault!.Reason, Does.Contain(named).And.Contain("covered up to block 3"));
        }
    }

    [Test]
    public void The_first_section_may_begin_anywhere_and_a_verifier_that_started_later_takes_its_coverage_unchecked()
    {
        List<byte[]> entries = Build(Sizes(20), e => new Roots(e) { Next = 6, When = b => b is 10 or 15 or 20 }, out _);
        var fromGenesis = new ChainVerifier(s_cluster) { CheckRoots = true };
        Assert.That(VerifyAll(entries, fromGenesis), Is.Null, "roots began at block 6 (a journal written before roots existed)");
        Assert.That((fromGenesis.RootsCoverFrom, fromGenesis.RootsCoverUntil, fromGenesis.RootsChecked), Is.EqualTo(((ulong?)6, (ulong?)19, 3L)));

        // A verifier trusting block 8's head (a journal starting at a snapshot): the section in block 10
        // covers 6…9, partly before it: taken, not checked; the next ones are checked.
        var verifiedTo8 = new ChainVerifier(s_cluster);
        Assert.That(VerifyAll(entries.Take(9).ToList(), verifiedTo8), Is.Null);
        var later = new ChainVerifier(verifiedTo8.Head) { CheckRoots = true };
        Assert.That(VerifyAll(entries, later, from: 9), Is.Null);
        Assert.That((later.RootsUnchecked, later.RootsChecked, later.RootsCoverUntil), Is.EqualTo((1L, 2L, (ulong?)19)));
    }

    [TestCase(0UL, 1u, 1u, "after genesis")]
    [TestCase(1UL, 0u, 1u, "at least one block")]
    [TestCase(1UL, 3u, 3u, "before this block")]
    [TestCase(3UL, 1u, 1u, "before this block")]
    [TestCase(1UL, 2u, 0u, "at least one record")]
    public void A_malformed_section_is_refused_by_every_reader(ulong first, uint blocks, uint records, string named)
    {
        List<byte[]> entries = Build(Sizes(3), e => new Roots(e) { When = b => b == 3 }, out _);
        byte[] block = entries[3];
        BlockFormat.WriteRecordsRoot(block, new RecordsRoot(first, blocks, records, default));
        SHA256.HashData(block.AsSpan(0, block.Length - 32), block.AsSpan(block.Length - 32));
        Assert.That(BlockFormat.TryReadHeader(block, out _), Does.Contain("records-root section").And.Contain(named));
    }

    /// <summary>FasterLog never splits an entry across pages: the largest block a page must hold is one that carries a records root.</summary>
    [Test]
    public void A_page_must_hold_the_largest_block_with_its_records_root()
    {
        // 4 KiB pages: 61 records make a 4,048-byte block, 4,096 with its section, and FasterLog's 4-byte header does not fit.
        var settings = new Engine.Core.Journaling.JournalSettings { Directory = "unused", PageSizeBits = 12, MemorySizeBits = 16, SegmentSizeBits = 16, MaxCommitLagBytes = 8192 };
        Assert.That(() => (settings with { MaxTransactionsPerBlock = 61 }).Validate(), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("does not fit a page"));
        Assert.That(() => (settings with { MaxTransactionsPerBlock = 60 }).Validate(), Throws.Nothing);
        Assert.That(BlockFormat.MaxEntryBytes(61), Is.EqualTo(BlockFormat.EntryBytes(61) + BlockFormat.SectionBytes));
    }

    [Test]
    public void A_records_root_flag_without_its_section_bytes_is_refused()
    {
        List<byte[]> entries = Build(Sizes(3), e => new Roots(e) { When = _ => false }, out _);
        BinaryPrimitives.WriteUInt16LittleEndian(entries[2].AsSpan(BlockFormat.SectionsOffset), (ushort)BlockSections.RecordsRoot);
        Assert.That(BlockFormat.TryReadHeader(entries[2], out _), Does.Contain("header of 112 bytes where flags 0x0001 make it 160"));
    }
}
