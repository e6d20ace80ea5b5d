using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;
using Engine.Tests.Support;

namespace Engine.Tests.Journaling;

/// <summary>The journal on a real FasterLog in a temp directory: creation, recovery, tamper, the pipeline into it.</summary>
public class JournalTests
{
    private TempDirectory _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempDirectory("journal");

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private JournalSettings Settings(string name = "j", Durability durability = Durability.Memory, int maxTx = 1000) =>
        new() { Directory = _temp.Sub(name), Durability = durability, MaxTransactionsPerBlock = maxTx, MemorySizeBits = 24, PageSizeBits = 20, MaxCommitLagBytes = 1 << 20 };

    /// <summary>Ring of 16 slots and blocks of at most 7: block cuts at the size bound and wrap-around happen at once.</summary>
    private static readonly RingSettings TinyRing = new() { Size = 16 };

    /// <summary>
    /// FASTER never splits an entry across pages: one that does not fit moves the tail to the next
    /// page first, and a commit taken in that instant ends at the page boundary after an empty page
    /// tail (seen as a rare "entries end before the committed end" after a SIGKILL). Only that gap is
    /// accepted: one that does not end at a boundary, or spans more than the rest of one page, is not.
    /// </summary>
    [TestCase(4096 - 200, 4096, true)]
    [TestCase(8192 + 1, 12288, true)]
    [TestCase(4096 - 200, 4000, false)]
    [TestCase(4096 - 200, 8192, false)]
    [TestCase(100, 8192, false)]
    [TestCase(4096, 4096, false)]
    public void Only_the_empty_rest_of_one_page_may_end_a_chain_before_its_committed_end(long reached, long until, bool accepted) =>
        Assert.That(JournalReader.IsEmptyPageTail(reached, until, pageSizeBits: 12), Is.EqualTo(accepted));

    [Test]
    public void A_new_journal_holds_a_genesis_block_and_reopens_to_the_same_head()
    {
        ChainHead created;
        using (Journal journal = Journal.Open(Settings()))
        {
            created = journal.Head;
            Assert.That(created.BlockNo, Is.EqualTo(BlockFormat.GenesisBlockNo));
            Assert.That(created.LastLsn, Is.Zero);
        }
        using (Journal reopened = Journal.Open(Settings()))
        {
            Assert.That(reopened.Head, Is.EqualTo(created));
        }
    }

    /// <summary>What a synthetic run journals first into a new ledger, as a node does: its reference data.</summary>
    private static readonly List<Transaction> s_initial = [.. ReferenceData.Development().AdminTransactions()];

    [Test]
    public void The_pipeline_journals_exactly_the_valid_requests_in_order([Values] Durability durability, [Values] StageTopology topology)
    {
        const int Count = 20_000;
        LedgerRunResult result;
        ChainHead head;
        using (Journal journal = Journal.Open(Settings(durability: durability, maxTx: 7)))
        {
            result = SyntheticLedgerRun.Run(journal, Count, TinyRing, seed: 5, topology: topology);
            Assert.That(journal.CommittedUntil, Is.EqualTo(journal.TailAddress), "flushed at the end of the run");
        }
        using (Journal reopened = Journal.Open(Settings(durability: durability, maxTx: 7)))
        {
            head = reopened.Head;
        }

        // Replay the same seeded flow: every frame that decodes and passes the reference data must
        // be in the ledger, in order, with dense LSNs; nothing else may be.
        var flow = new SyntheticOrderFlow(5, InstrumentTable.Development());
        var instruments = InstrumentTable.Development();
        var expected = new List<Transaction>();
        var frame = new byte[TransactionCodec.MaxFrameBytes];
        for (int i = 0; i < Count; i++)
        {
            int length = flow.Next(frame);
            if (TransactionCodec.Decode(frame.AsSpan(0, length), out Transaction tx) == RejectReason.None && instruments.Check(in tx) == RejectReason.None)
            {
                expected.Add(tx);
            }
        }
        List<(ulong Lsn, Transaction Tx)> journaled = ReadAll(Settings().Directory);

        Assert.Multiple(() =>
        {
            Assert.That(result.Accepted, Is.EqualTo(expected.Count));
            Assert.That(result.Rejected, Is.EqualTo(Count - expected.Count));
            Assert.That(result.Rejected, Is.GreaterThan(0), "the flow includes invalid requests");
            Assert.That(result.Blocks, Is.GreaterThanOrEqualTo(expected.Count / 7), "blocks are cut at 7 transactions");
            Assert.That(journaled.Select(j => j.Lsn), Is.EqualTo(Enumerable.Range(1, s_initial.Count + expected.Count).Select(i => (ulong)i)));
            Assert.That(journaled.Select(j => j.Tx), Is.EqualTo(s_initial.Concat(expected)), "the new ledger's reference data, then the valid requests");
            Assert.That(head.LastLsn, Is.EqualTo((ulong)(s_initial.Count + expected.Count)));
        });
    }

    [Test]
    public void A_run_longer_than_the_frame_pool_journals_every_valid_request()
    {
        // Pooled frames are reused with fresh clientSeqs; were they not, the sealer would take
        // them for resends and journal nothing past the pool.
        long count = SyntheticLedgerRun.FramePool + 5_000;
        using Journal journal = Journal.Open(Settings());
        LedgerRunResult result = SyntheticLedgerRun.Run(journal, count, new RingSettings { Size = 1024 });
        journal.Flush();
        using var reopened = JournalReader.Open(Settings().Directory);
        VerifyReport report = reopened.Verify();
        Assert.Multiple(() =>
        {
            Assert.That(result.Accepted + result.Rejected, Is.EqualTo(count));
            Assert.That(result.Accepted, Is.GreaterThan(SyntheticLedgerRun.FramePool));
            Assert.That(report.Transactions, Is.EqualTo(s_initial.Count + result.Accepted), "every accepted request is in the ledger, after the reference data");
        });
    }

    [Test]
    public void A_second_run_continues_the_same_chain()
    {
        using (Journal journal = Journal.Open(Settings()))
        {
            SyntheticLedgerRun.Run(journal, 3_000, TinyRing, seed: 1);
        }
        ChainHead afterFirst;
        using (Journal journal = Journal.Open(Settings()))
        {
            afterFirst = journal.Head;
            SyntheticLedgerRun.Run(journal, 3_000, TinyRing, seed: 2);
        }
        using JournalReader reader = JournalReader.Open(Settings().Directory);
        VerifyReport report = reader.Verify();
        Assert.That(report.Intact, Is.True, report.Fault?.ToString());
        Assert.That(report.Head!.Value.LastLsn, Is.GreaterThan(afterFirst.LastLsn));
        Assert.That(report.Head.Value.BlockNo, Is.GreaterThan(afterFirst.BlockNo));
    }

    [Test]
    public void Verifying_from_an_earlier_verification_rehashes_only_what_came_after_and_refuses_a_foreign_start()
    {
        using (Journal journal = Journal.Open(Settings()))
        {
            SyntheticLedgerRun.Run(journal, 3_000, TinyRing, seed: 1);
        }
        VerifyReport first;
        using (JournalReader reader = JournalReader.Open(Settings().Directory))
        {
            first = reader.Verify();
        }
        using (Journal journal = Journal.Open(Settings()))
        {
            SyntheticLedgerRun.Run(journal, 3_000, TinyRing, seed: 2);
        }
        using JournalReader again = JournalReader.Open(Settings().Directory);
        VerifyReport whole = again.Verify();
        VerifyReport rest = again.VerifyFrom(first.CommittedUntil, first.Head!.Value);
        Assert.Multiple(() =>
        {
            Assert.That(rest.Intact, Is.True, rest.Fault?.ToString());
            Assert.That(rest.Head, Is.EqualTo(whole.Head), "the same head as a verification from genesis");
            Assert.That(rest.Blocks, Is.EqualTo(whole.Blocks - first.Blocks), "only the blocks after the first verification");
            Assert.That(again.VerifyFrom(whole.CommittedUntil, whole.Head!.Value).Head, Is.EqualTo(whole.Head), "nothing new: the trusted head stands");
            ChainHead stranger = first.Head!.Value with { Hash = whole.Head!.Value.Hash };
            Assert.That(again.VerifyFrom(first.CommittedUntil, stranger).Intact, Is.False, "a head the next block does not chain to");
            Assert.That(again.VerifyFrom(whole.CommittedUntil + 64, whole.Head!.Value).Intact, Is.False, "a start past the journal's end");
        });
    }

    [Test]
    public void Flipping_any_byte_of_any_block_fails_verification_at_that_block()
    {
        string original = Settings().Directory;
        using (Journal journal = Journal.Open(Settings(maxTx: 20)))
        {
            SyntheticLedgerRun.Run(journal, 400, TinyRing, seed: 3);
        }
        var blocks = new List<(long Address, int Length, ulong BlockNo)>();
        using (JournalReader reader = JournalReader.Open(original))
        {
            reader.Scan((entry, address) =>
            {
                Assert.That(BlockFormat.TryReadHeader(entry, out BlockHeader header), Is.Null);
                blocks.Add((address, entry.Length, header.BlockNo));
                return true;
            });
        }
        Assert.That(blocks, Has.Count.GreaterThan(10));

        // Every entry occupies [address, address + 4 + length): FasterLog's 4-byte length header,
        // then our block. Positions: each byte of a length header, the magic, the prev hash, the
        // body and the stored hash of a few blocks, plus seeded random ones anywhere in any block.
        var random = new Random(11);
        var positions = new List<(long Offset, ulong BlockNo)>();
        foreach (var (address, length, blockNo) in new[] { blocks[0], blocks[1], blocks[blocks.Count / 2], blocks[^1] })
        {
            for (int i = 0; i < 4; i++)
            {
                positions.Add((address + i, blockNo));
            }
            positions.Add((address + 4, blockNo));
            positions.Add((address + 4 + BlockFormat.PrevHashOffset + 3, blockNo));
            positions.Add((address + 4 + length / 2, blockNo));
            positions.Add((address + 4 + length - 1, blockNo));
        }
        for (int i = 0; i < 24; i++)
        {
            var (address, length, blockNo) = blocks[random.Next(blocks.Count)];
            positions.Add((address + random.Next(4 + length), blockNo));
        }

        foreach (var (offset, blockNo) in positions)
        {
            string copy = _temp.Sub($"tampered-{offset}");
            TempDirectory.Copy(original, copy);
            using (FileStream file = File.Open(Path.Combine(copy, "log.0"), FileMode.Open, FileAccess.ReadWrite))
            {
                file.Position = offset; // segment 0: the file offset is the log address
                int b = file.ReadByte();
                file.Position = offset;
                file.WriteByte((byte)(b ^ 0x20));
            }
            using (JournalReader reader = JournalReader.Open(copy))
            {
                VerifyReport report = reader.Verify();
                Assert.That(report.Fault, Is.Not.Null, $"flip at {offset} (block {blockNo}) went unnoticed");
                Assert.That(report.Fault!.BlockNo, Is.EqualTo(blockNo), $"flip at {offset}: {report.Fault}");
            }
            var refused = Assert.Throws<JournalCorruptException>(() => Journal.Open(Settings($"tampered-{offset}", maxTx: 20)).Dispose());
            Assert.That(refused!.Fault?.BlockNo, Is.EqualTo(blockNo), $"open after a flip at {offset}");
        }
    }

    [Test]
    public void Lost_commits_are_refused_not_replaced_by_an_empty_chain()
    {
        using (Journal journal = Journal.Open(Settings()))
        {
            SyntheticLedgerRun.Run(journal, 500, TinyRing);
        }
        Directory.Delete(Path.Combine(Settings().Directory, Journal.CommitDirectoryName), recursive: true);
        var error = Assert.Throws<JournalCorruptException>(() => Journal.Open(Settings()).Dispose());
        Assert.That(error!.Message, Does.Contain("no commit was recovered"));
    }

    [Test]
    public void An_interrupted_creation_starts_afresh()
    {
        string dir = Settings().Directory;
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "log.0"), new byte[4096]); // no marker, no commit: never journaled
        using Journal journal = Journal.Open(Settings());
        Assert.That(journal.Head.BlockNo, Is.EqualTo(BlockFormat.GenesisBlockNo));
    }

    [Test]
    public void Settings_check_their_relationships()
    {
        Assert.Multiple(() =>
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => new JournalSettings { Directory = "x", PageSizeBits = 22, MemorySizeBits = 22 }.Validate(), "one page of memory");
            Assert.Throws<ArgumentOutOfRangeException>(() => new JournalSettings { Directory = "x", PageSizeBits = 12, MaxTransactionsPerBlock = 1000 }.Validate(), "a block larger than a page");
            Assert.Throws<ArgumentOutOfRangeException>(() => new JournalSettings { Directory = "x", MaxCommitLagBytes = 1L << 40 }.Validate(), "a lag larger than half the memory");
            Assert.That(new JournalSettings { Directory = "x" }.Validate().ToString(), Does.Contain("durability memory"));
        });
    }

    private static List<(ulong Lsn, Transaction Tx)> ReadAll(string directory)
    {
        var all = new List<(ulong, Transaction)>();
        using JournalReader reader = JournalReader.Open(directory);
        Assert.That(reader.Verify().Intact, Is.True);
        reader.Scan((entry, _) =>
        {
            Assert.That(BlockRecords.TryOpen(entry, out BlockRecords records), Is.Null);
            foreach (BlockRecord record in records)
            {
                record.Read(out Transaction tx);
                all.Add((record.Lsn, tx));
            }
            return true;
        });
        return all;
    }
}
