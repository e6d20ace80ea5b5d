using System.Security.Cryptography;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;
using Engine.Tests.Chain;
using Engine.Tests.Support;

namespace Engine.Tests.Journaling;

/// <summary>The journal and block format version 2: the cluster id in genesis, journals of another cluster or version refused.</summary>
public class JournalFormatTests
{
    private static readonly ClusterId s_a = ClusterId.Parse("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    private static readonly ClusterId s_b = ClusterId.Parse("b0b1b2b3b4b5b6b7b8b9babbbcbdbebf");
    private static readonly RingSettings s_tinyRing = new() { Size = 16 };

    private TempDirectory _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempDirectory("journal-format");

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private JournalSettings Settings(ClusterId cluster, string name = "j") =>
        new() { Directory = _temp.Sub(name), ClusterId = cluster, MemorySizeBits = 24, PageSizeBits = 20, MaxCommitLagBytes = 1 << 20, MaxTransactionsPerBlock = 7 };

    [Test]
    public void A_journal_names_its_cluster_in_genesis_and_is_refused_under_another()
    {
        ChainHead head;
        using (Journal journal = Journal.Open(Settings(s_a)))
        {
            Assert.That(journal.ClusterId, Is.EqualTo(s_a));
            SyntheticLedgerRun.Run(journal, 500, s_tinyRing, seed: 1);
        }
        using (Journal journal = Journal.Open(Settings(s_a)))
        {
            head = journal.Head;
            Assert.That(head.ClusterId, Is.EqualTo(s_a));
            Assert.That(head.LastLsn, Is.GreaterThan(0));
        }

        foreach (ClusterId stranger in new[] { s_b, ClusterId.Development })
        {
            var refused = Assert.Throws<JournalClusterMismatchException>(() => Journal.Open(Settings(stranger)).Dispose());
            Assert.Multiple(() =>
            {
                Assert.That(refused!.Expected, Is.EqualTo(stranger));
                Assert.That(refused.Found, Is.EqualTo(s_a));
                Assert.That(refused.Message, Does.Contain($"belongs to cluster {s_a}").And.Contain($"this node is of cluster {stranger}")
                    .And.Contain("refusing to continue another cluster's chain"));
                Assert.That(refused, Is.InstanceOf<JournalCorruptException>(), "every place that refuses a bad journal refuses this one");
            });
        }

        // Refusing changed nothing: the chain is whole, of cluster A, and A's node continues it.
        using (JournalReader reader = JournalReader.Open(Settings(s_a).Directory))
        {
            VerifyReport report = reader.Verify();
            Assert.Multiple(() =>
            {
                Assert.That(report.Intact, Is.True, report.Fault?.ToString());
                Assert.That(report.Head, Is.EqualTo(head));
                Assert.That(report.ClusterId, Is.EqualTo(s_a));
                Assert.That(report.FormatVersion, Is.EqualTo(BlockFormat.Version));
                Assert.That(reader.Verify(s_a).Intact, Is.True);
                BlockFault? fault = reader.Verify(s_b).Fault;
                Assert.That(fault?.BlockNo, Is.EqualTo(BlockFormat.GenesisBlockNo));
                Assert.That(fault?.Reason, Does.Contain($"genesis names cluster {s_a}, not {s_b}"));
            });
        }
        using (Journal journal = Journal.Open(Settings(s_a)))
        {
            Assert.That(journal.Head, Is.EqualTo(head));
        }
    }

    [Test]
    public void A_development_journal_is_refused_to_a_node_of_a_real_cluster()
    {
        using (Journal journal = Journal.Open(Settings(ClusterId.Development)))
        {
            SyntheticLedgerRun.Run(journal, 100, s_tinyRing, seed: 1);
        }
        var refused = Assert.Throws<JournalClusterMismatchException>(() => Journal.Open(Settings(s_a)).Dispose());
        Assert.That(refused!.Message, Does.Contain("(development)"));
    }

    [Test]
    public void Two_clusters_chains_share_no_block_and_one_clusters_two_nodes_share_genesis()
    {
        Dictionary<ulong, Hash32> a = Run(Settings(s_a, "a"));
        Dictionary<ulong, Hash32> a2 = Run(Settings(s_a, "a2"));
        Dictionary<ulong, Hash32> b = Run(Settings(s_b, "b"));
        Assert.Multiple(() =>
        {
            Assert.That(a[0], Is.EqualTo(a2[0]), "the two nodes of a new pair start from the same genesis");
            Assert.That(b[0], Is.Not.EqualTo(a[0]), "genesis hashes differ between clusters");
            // Block cuts follow the ring's batching (timing), so the two runs need not cut the same blocks.
            Assert.That(b.Count, Is.GreaterThan(1), "the flow sealed blocks after genesis");
            Assert.That(a.Values.Intersect(b.Values), Is.Empty, "no block hash in common");
        });

        static Dictionary<ulong, Hash32> Run(JournalSettings settings)
        {
            using (Journal journal = Journal.Open(settings))
            {
                SyntheticLedgerRun.Run(journal, 300, s_tinyRing, seed: 9);
            }
            var hashes = new Dictionary<ulong, Hash32>();
            using JournalReader reader = JournalReader.Open(settings.Directory);
            reader.Scan((entry, _) =>
            {
                Assert.That(BlockFormat.TryReadHeader(entry, out BlockHeader header), Is.Null);
                Assert.That(header.ClusterId, Is.EqualTo(settings.ClusterId), $"block {header.BlockNo}");
                hashes[header.BlockNo] = BlockFormat.StoredHash(entry, in header);
                return true;
            });
            return hashes;
        }
    }

    [Test]
    public void A_version_1_journal_is_refused_for_writing_and_still_verifies_for_audit()
    {
        Transaction[] records = [Transaction.NewOrder(1, 1, 2, 3, 10, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 5), Transaction.Cancel(1, 2, 2, 3, 11, 10)];
        JournalSettings settings = Settings(ClusterId.Development);
        RawJournal.Write(settings, Version1Blocks.Chain(records));
        long bytesBefore = new FileInfo(Path.Combine(settings.Directory, "log.0")).Length;

        var refused = Assert.Throws<JournalFormatException>(() => Journal.Open(settings).Dispose());
        Assert.Multiple(() =>
        {
            Assert.That(refused!.Version, Is.EqualTo(BlockFormat.Version1));
            Assert.That(refused.Message, Does.Contain("block format version 1").And.Contain("never appends it to an older chain")
                .And.Contain("'engine log verify|dump' read it").And.Contain("empty data directory"));
            Assert.That(new FileInfo(Path.Combine(settings.Directory, "log.0")).Length, Is.EqualTo(bytesBefore), "nothing appended");
        });

        using JournalReader reader = JournalReader.Open(settings.Directory);
        VerifyReport report = reader.Verify();
        var read = new List<Transaction>();
        reader.Scan((entry, _) =>
        {
            Assert.That(BlockRecords.TryOpen(entry, out BlockRecords records, acceptVersion1: true), Is.Null);
            foreach (BlockRecord record in records)
            {
                record.Read(out Transaction tx);
                read.Add(tx);
            }
            return true;
        });
        Assert.Multiple(() =>
        {
            Assert.That(report.Intact, Is.True, report.Fault?.ToString());
            Assert.That(report.FormatVersion, Is.EqualTo(BlockFormat.Version1));
            Assert.That(report.Transactions, Is.EqualTo(2));
            Assert.That(read, Is.EqualTo(records));
        });
    }

    [Test]
    public void A_journal_holding_a_record_of_a_kind_this_engine_does_not_know_is_refused_by_name()
    {
        JournalSettings settings = Settings(s_a);
        var entries = new List<byte[]> { BlockBuilder.Genesis(s_a, 1, 0, out ChainHead genesis) };
        var builder = new BlockBuilder(genesis, 4);
        var tx = Transaction.Cancel(1, 1, 1, 1, 2, 1);
        builder.Add(in tx);
        builder.Add(in tx);
        byte[] block = builder.Seal(1, out _).ToArray();
        block[BlockFormat.HeaderBytes + LedgerRecord.Bytes + LedgerRecord.KindOffset] = 0x31; // reserved
        SHA256.HashData(block.AsSpan(0, block.Length - 32), block.AsSpan(block.Length - 32));
        entries.Add(block);
        RawJournal.Write(settings, entries);

        var refused = Assert.Throws<JournalCorruptException>(() => Journal.Open(settings).Dispose());
        Assert.That(refused!.Fault?.BlockNo, Is.EqualTo(1));
        Assert.That(refused.Fault?.Reason, Does.Contain("record 1 (LSN 2) has kind 0x31, reserved"));
    }

    [Test]
    public void Settings_print_the_cluster()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Settings(s_a).Validate().ToString(), Does.Contain($"cluster {s_a}"));
            Assert.That(new JournalSettings { Directory = "x" }.ClusterId, Is.EqualTo(ClusterId.Development));
            Assert.That(new JournalSettings { Directory = "x" }.ToString(), Does.Contain("(development)"));
        });
    }
}
