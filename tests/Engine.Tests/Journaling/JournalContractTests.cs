using System.Buffers.Binary;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;
using Engine.Tests.Support;

namespace Engine.Tests.Journaling;

/// <summary>
/// The contract of <see cref="IJournal"/>, run against the FasterLog journal (<see cref="Journal"/>,
/// in a temp directory) and the simulated one (<see cref="SimulatedJournal"/>), in both
/// durabilities: append, commit, crash, recover, read. Where the FasterLog journal's committer runs
/// on its own clock (it may commit appended blocks any time before a crash), the contract states
/// the weaker guarantee, and the simulated journal, which commits only when told, is held to the
/// exact one as well (<see cref="JournalHarness.CommitsOnlyWhenTold"/>).
/// </summary>
[TestFixtureSource(nameof(Implementations))]
public sealed class JournalContractTests(string implementation, Durability durability)
{
    public static IEnumerable<TestFixtureData> Implementations =>
        from name in new[] { JournalHarness.FasterLog, JournalHarness.Simulated }
        from durability in new[] { Durability.Memory, Durability.Disk }
        select new TestFixtureData(name, durability);

    private static readonly ClusterId s_cluster = ClusterId.Parse("c0c1c2c3c4c5c6c7c8c9cacbcccdcecf");
    private static readonly ClusterId s_stranger = ClusterId.Parse("d0d1d2d3d4d5d6d7d8d9dadbdcdddedf");

    private JournalHarness _harness = null!;

    [SetUp]
    public void SetUp() => _harness = JournalHarness.Create(implementation, durability);

    [TearDown]
    public void TearDown() => _harness.Dispose();

    [Test]
    public void A_new_journal_starts_at_its_clusters_genesis_and_reopens_to_the_same_head()
    {
        ChainHead created;
        List<ScannedBlock> scanned;
        using (IJournal journal = _harness.Open(s_cluster))
        {
            created = journal.Head;
            scanned = ScanAll(journal);
            Assert.Multiple(() =>
            {
                Assert.That(created.BlockNo, Is.EqualTo(BlockFormat.GenesisBlockNo));
                Assert.That(created.LastLsn, Is.Zero);
                Assert.That(created.ClusterId, Is.EqualTo(s_cluster));
                Assert.That(journal.Fault, Is.Null);
                Assert.That(journal.FaultToken.IsCancellationRequested, Is.False);
                Assert.That(scanned, Has.Count.EqualTo(1), "genesis, committed at creation");
                Assert.That(journal.CommittedUntil, Is.GreaterThan(scanned[0].Address));
            });
            Assert.That(BlockFormat.TryReadHeader(scanned[0].Bytes, out BlockHeader genesis), Is.Null);
            Assert.That(BlockFormat.StoredHash(scanned[0].Bytes, in genesis), Is.EqualTo(created.Hash), "the head is genesis's hash");
        }
        using IJournal reopened = _harness.Open(s_cluster);
        Assert.That(reopened.Head, Is.EqualTo(created));
        Assert.That(ScanAll(reopened), Is.EqualTo(scanned));
    }

    [Test]
    public void Flushed_blocks_are_committed_and_the_journal_reopens_after_the_last_one()
    {
        ChainHead last;
        var addresses = new List<long>();
        using (IJournal journal = _harness.Open(s_cluster))
        {
            var chain = new TestChain(journal.Head);
            foreach (int transactions in new[] { 1, 17, 3, 40, 9 })
            {
                addresses.Add(journal.Append(chain.Next(transactions)));
            }
            journal.Flush();
            last = chain.Head;
            Assert.Multiple(() =>
            {
                Assert.That(addresses, Is.Ordered.Ascending.And.Unique, "addresses strictly increase");
                foreach (long address in addresses)
                {
                    Assert.That(journal.CommittedUntil, Is.GreaterThan(address), $"the block at {address} is committed after the flush");
                    Assert.That(journal.IsDurable(address), Is.True);
                    Assert.That(() => journal.WaitDurable(address), Throws.Nothing);
                }
            });
        }
        using IJournal reopened = _harness.Open(s_cluster);
        Assert.That(reopened.Head, Is.EqualTo(last));
        Assert.That(reopened.Head.LastLsn, Is.EqualTo(70UL));
    }

    [Test]
    public void Scan_visits_exactly_the_committed_blocks_in_order_with_their_addresses()
    {
        var expected = new List<ScannedBlock>();
        using (IJournal journal = _harness.Open(s_cluster))
        {
            expected.AddRange(ScanAll(journal));
            var chain = new TestChain(journal.Head);
            for (int i = 0; i < 7; i++)
            {
                byte[] block = chain.Next(1 + (i * 13 % 50));
                expected.Add(new ScannedBlock(journal.Append(block), block));
            }

            // Before a flush: what is committed, and nothing else, in order from genesis.
            List<ScannedBlock> early = ScanAll(journal);
            long committed = journal.CommittedUntil;
            Assert.That(early, Is.EqualTo(expected.Take(early.Count)), "a prefix of the appended chain");
            Assert.That(early.All(e => e.Address < committed), Is.True, "only committed blocks");
            if (_harness.CommitsOnlyWhenTold)
            {
                Assert.That(early, Has.Count.EqualTo(1), "nothing was committed since genesis");
            }

            journal.Flush();
            Assert.That(ScanAll(journal), Is.EqualTo(expected), "after the flush: every block, its bytes, its address");

            int visited = 0;
            journal.Scan((_, _) => ++visited < 3);
            Assert.That(visited, Is.EqualTo(3), "the scan stops when the visitor says so");

            // From a block's address (the pair ledger's index): that block and every one after it.
            var fromFourth = new List<ScannedBlock>();
            journal.Scan(expected[4].Address, (entry, address) =>
            {
                fromFourth.Add(new ScannedBlock(address, entry.ToArray()));
                return true;
            });
            Assert.That(fromFourth, Is.EqualTo(expected.Skip(4)), "a scan from an address");
            Assert.That(() => journal.Scan(journal.CommittedUntil + 64, (_, _) => true), Throws.InstanceOf<ArgumentOutOfRangeException>(), "past the committed end");
        }
        using IJournal reopened = _harness.Open(s_cluster);
        Assert.That(ScanAll(reopened), Is.EqualTo(expected), "the same after reopening");
    }

    [Test]
    public void LocateFrom_reaches_any_block_within_one_index_interval_also_after_reopening()
    {
        const int Blocks = 2_100;
        using (IJournal journal = _harness.Open(s_cluster))
        {
            var chain = new TestChain(journal.Head);
            for (int i = 0; i < Blocks; i++)
            {
                journal.Append(chain.Next(1));
            }
            Assert.That(journal.LocateFrom(Blocks), Is.LessThan(journal.CommittedUntil), "never an address past what is committed");
            journal.Flush();
            AssertReachable(journal, Blocks);
        }
        using IJournal reopened = _harness.Open(s_cluster);
        AssertReachable(reopened, Blocks);
    }

    private static void AssertReachable(IJournal journal, int blocks)
    {
        foreach (ulong wanted in new ulong[] { 0, 5, 1023, 1024, 1500, 2048, (ulong)blocks })
        {
            int before = 0;
            bool reached = false;
            journal.Scan(journal.LocateFrom(wanted), (entry, _) =>
            {
                BlockFormat.TryReadHeader(entry, out BlockHeader header);
                reached = header.BlockNo == wanted;
                before += header.BlockNo < wanted ? 1 : 0;
                return header.BlockNo < wanted;
            });
            Assert.That(reached, Is.True, $"block {wanted} reached");
            Assert.That(before, Is.LessThan((int)BlockIndex.Every), $"block {wanted}: within one index interval, not a scan from genesis");
        }
    }

    [Test]
    public void Durability_decides_when_a_block_counts_as_journaled()
    {
        using IJournal journal = _harness.Open(s_cluster);
        var chain = new TestChain(journal.Head);
        long address = journal.Append(chain.Next(5));
        if (durability == Durability.Memory)
        {
            Assert.That(journal.IsDurable(address), Is.True, "memory durability: once appended");
        }
        else if (_harness.CommitsOnlyWhenTold)
        {
            Assert.That(journal.IsDurable(address), Is.False, "disk durability: not before its commit");
            Assert.That(journal.CommittedUntil, Is.LessThanOrEqualTo(address));
        }
        journal.WaitDurable(address);
        Assert.That(journal.IsDurable(address), Is.True);
        if (durability == Durability.Disk)
        {
            Assert.That(journal.CommittedUntil, Is.GreaterThan(address), "disk durability: durable means committed");
        }
    }

    [Test]
    public void A_crash_keeps_every_committed_block_and_at_most_the_blocks_appended_after_them()
    {
        var appended = new List<(ScannedBlock Block, ChainHead Head)>();
        IJournal journal = _harness.Open(s_cluster);
        List<ScannedBlock> genesis = ScanAll(journal);
        var chain = new TestChain(journal.Head);
        void Append(int transactions)
        {
            byte[] block = chain.Next(transactions);
            appended.Add((new ScannedBlock(journal.Append(block), block), chain.Head));
        }
        Append(4);
        Append(8);
        journal.Flush();
        Append(2);
        Append(30);
        _harness.Crash(journal, tearLastWrite: false);

        using IJournal reopened = _harness.Open(s_cluster);
        List<ScannedBlock> recovered = ScanAll(reopened);
        Assert.Multiple(() =>
        {
            Assert.That(recovered, Is.EqualTo(genesis.Concat(appended.Select(a => a.Block)).Take(recovered.Count)), "a prefix of what was appended");
            Assert.That(recovered, Has.Count.GreaterThanOrEqualTo(3), "with every block committed before the crash");
            Assert.That(reopened.Head, Is.EqualTo(appended[recovered.Count - 2].Head), "the head is the last block recovered");
            if (_harness.CommitsOnlyWhenTold)
            {
                Assert.That(reopened.Head, Is.EqualTo(appended[1].Head), "exactly what was committed");
            }
        });
        AssertTheChainGoesOn(reopened);
    }

    [Test]
    public void A_torn_last_write_is_cut_at_recovery_and_the_chain_goes_on([Values(1, 2, 3)] int seed)
    {
        _harness.Seed = seed;
        var appended = new List<ChainHead>();
        IJournal journal = _harness.Open(s_cluster);
        var chain = new TestChain(journal.Head);
        journal.Append(chain.Next(6));
        appended.Add(chain.Head);
        journal.Flush();
        for (int i = 0; i < 3; i++)
        {
            journal.Append(chain.Next(10 + i));
            appended.Add(chain.Head);
        }
        _harness.Crash(journal, tearLastWrite: true);

        using IJournal reopened = _harness.Open(s_cluster);
        Assert.That(appended, Does.Contain(reopened.Head), "recovered to one of the appended blocks");
        Assert.That(reopened.Head.BlockNo, Is.GreaterThanOrEqualTo(appended[0].BlockNo), "not before the committed one");
        if (_harness.CommitsOnlyWhenTold)
        {
            Assert.That(reopened.Head, Is.EqualTo(appended[0]), "exactly the committed one");
        }
        AssertTheChainGoesOn(reopened);
    }

    [Test]
    public void A_failed_append_is_the_sticky_fault_and_nothing_passes_after_it()
    {
        ChainHead committed;
        long first;
        using (IJournal journal = _harness.Open(s_cluster))
        {
            int told = 0;
            using CancellationTokenRegistration registration = journal.FaultToken.Register(() => told++);
            var chain = new TestChain(journal.Head);
            first = journal.Append(chain.Next(3));
            journal.Flush();
            committed = chain.Head;
            long committedUntil = journal.CommittedUntil;

            _harness.FailNextAppend(journal);
            Assert.That(() => journal.Append(chain.Next(3)), Throws.InstanceOf<JournalFaultException>(), "the armed append fails");
            Assert.Multiple(() =>
            {
                Assert.That(journal.Fault, Is.Not.Null, "the failure is the journal's fault");
                Assert.That(journal.FaultToken.IsCancellationRequested, Is.True);
                Assert.That(told, Is.EqualTo(1), "and it was told, once");
                Assert.That(() => journal.Append(new TestChain(committed).Next(1)), Throws.InstanceOf<JournalFaultException>(), "sticky: appends");
                Assert.That(() => journal.WaitDurable(first), Throws.InstanceOf<JournalFaultException>(), "sticky: even a committed block passes the gate no more");
                Assert.That(() => journal.Flush(), Throws.Nothing, "a flush with nothing left to commit does not wait, so does not throw");
                Assert.That(journal.CommittedUntil, Is.EqualTo(committedUntil), "nothing more was committed");
                Assert.That(ScanAll(journal), Has.Count.EqualTo(2), "what was committed can still be read");
            });
        }
        using IJournal reopened = _harness.Open(s_cluster);
        Assert.That(reopened.Head, Is.EqualTo(committed), "the failed block is not there");
        Assert.That(reopened.Fault, Is.Null, "a fault belongs to the journal that saw it, not to the device");
        AssertTheChainGoesOn(reopened);
    }

    [Test]
    public void A_fault_loses_what_was_appended_and_not_committed_before_it()
    {
        var heads = new List<ChainHead>();
        long pending;
        using (IJournal journal = _harness.Open(s_cluster))
        {
            var chain = new TestChain(journal.Head);
            journal.Append(chain.Next(3));
            heads.Add(chain.Head);
            journal.Flush();
            pending = journal.Append(chain.Next(3));
            heads.Add(chain.Head);
            _harness.FailNextAppend(journal);
            Assert.That(() => journal.Append(chain.Next(3)), Throws.InstanceOf<JournalFaultException>());
            // A flush that would have to commit after the fault fails; one that returns found the
            // block committed (FasterLog's committer may have finished a commit it had begun).
            try
            {
                journal.Flush();
                Assert.That(journal.CommittedUntil, Is.GreaterThan(pending), "a flush returned, so the block was committed");
                Assert.That(_harness.CommitsOnlyWhenTold, Is.False, "the simulated journal commits nothing after a fault");
            }
            catch (JournalFaultException)
            {
                Assert.That(journal.CommittedUntil, Is.LessThanOrEqualTo(pending), "the flush failed: the block was not committed");
            }
        }
        using IJournal reopened = _harness.Open(s_cluster);
        Assert.That(heads, Does.Contain(reopened.Head), "the block that failed is not there");
        if (_harness.CommitsOnlyWhenTold)
        {
            Assert.That(reopened.Head, Is.EqualTo(heads[0]), "nor the one appended, not committed, before it: no commit follows a fault");
        }
    }

    [Test]
    public void Another_clusters_journal_is_refused_and_left_as_it_was()
    {
        ChainHead head;
        using (IJournal journal = _harness.Open(s_cluster))
        {
            var chain = new TestChain(journal.Head);
            journal.Append(chain.Next(2));
            journal.Flush();
            head = chain.Head;
        }
        var refused = Assert.Throws<JournalClusterMismatchException>(() => _harness.Open(s_stranger).Dispose());
        Assert.Multiple(() =>
        {
            Assert.That(refused!.Expected, Is.EqualTo(s_stranger));
            Assert.That(refused.Found, Is.EqualTo(s_cluster));
        });
        using IJournal again = _harness.Open(s_cluster);
        Assert.That(again.Head, Is.EqualTo(head));
    }

    [Test]
    public void A_damaged_committed_block_refuses_the_journal_naming_that_block()
    {
        var blocks = new List<ScannedBlock>();
        using (IJournal journal = _harness.Open(s_cluster))
        {
            var chain = new TestChain(journal.Head);
            for (int i = 0; i < 4; i++)
            {
                byte[] block = chain.Next(5 + i);
                blocks.Add(new ScannedBlock(journal.Append(block), block));
            }
            journal.Flush();
        }
        ScannedBlock damaged = blocks[2];
        _harness.FlipByte(damaged.Address + 4 + damaged.Bytes.Length / 2);
        var refused = Assert.Throws<JournalCorruptException>(() => _harness.Open(s_cluster).Dispose());
        Assert.That(refused!.Fault?.BlockNo, Is.EqualTo(3UL), refused.Message);
    }

    /// <summary>A block appended to the reopened journal follows its head, and a clean reopen verifies the whole chain up to it.</summary>
    private void AssertTheChainGoesOn(IJournal reopened)
    {
        var chain = new TestChain(reopened.Head);
        reopened.Append(chain.Next(7));
        reopened.Flush();
        List<ScannedBlock> before = ScanAll(reopened);
        reopened.Dispose();
        using IJournal again = _harness.Open(s_cluster);
        Assert.That(again.Head, Is.EqualTo(chain.Head), "the chain goes on after the recovered head");
        Assert.That(ScanAll(again), Is.EqualTo(before));
    }

    internal static List<ScannedBlock> ScanAll(IJournal journal)
    {
        var entries = new List<ScannedBlock>();
        journal.Scan((entry, address) =>
        {
            entries.Add(new ScannedBlock(address, entry.ToArray()));
            return true;
        });
        return entries;
    }
}

/// <summary>One journaled block as a scan sees it; equal when address and bytes are.</summary>
internal sealed record ScannedBlock(long Address, byte[] Bytes)
{
    public bool Equals(ScannedBlock? other) => other is not null && Address == other.Address && Bytes.AsSpan().SequenceEqual(other.Bytes);

    public override int GetHashCode() => HashCode.Combine(Address, Bytes.Length);

    public override string ToString() => $"{Bytes.Length} bytes at {Address}";
}

/// <summary>Valid blocks continuing a head, made by the real <see cref="BlockBuilder"/>.</summary>
internal sealed class TestChain(ChainHead head)
{
    public const int MaxTransactions = 100;

    private readonly BlockBuilder _builder = new(head, MaxTransactions);

    public ChainHead Head => _builder.Head;

    public byte[] Next(int transactions)
    {
        for (int i = 0; i < transactions; i++)
        {
            ulong seq = _builder.Head.LastLsn + (ulong)_builder.Count + 1;
            var tx = Transaction.NewOrder(1, seq, 1, 1, seq, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 990, 1);
            _builder.Add(in tx);
        }
        return _builder.Seal(1, out _).ToArray();
    }
}

/// <summary>One implementation of <see cref="IJournal"/> and how a test crashes it, damages it, makes it fail.</summary>
internal abstract class JournalHarness : IDisposable
{
    public const string FasterLog = "fasterlog";
    public const string Simulated = "simulated";

    private readonly List<IJournal> _opened = [];

    protected JournalHarness(Durability durability) => Durability = durability;

    public Durability Durability { get; }

    /// <summary>Decides where a simulated torn write falls.</summary>
    public int Seed { get; set; }

    /// <summary>Commits only when a wait or the simulator asks: a crash loses exactly what was not committed. False for FasterLog, whose committer commits on its own.</summary>
    public abstract bool CommitsOnlyWhenTold { get; }

    public static JournalHarness Create(string implementation, Durability durability) => implementation switch
    {
        FasterLog => new FasterLogHarness(durability),
        Simulated => new SimulatedHarness(durability),
        _ => throw new ArgumentOutOfRangeException(nameof(implementation), implementation, null),
    };

    /// <summary>Small pages, and in memory durability commits at least 50 ms apart, so that a crash right after appends usually finds them uncommitted.</summary>
    protected JournalSettings Settings(string directory, ClusterId cluster) => new()
    {
        Directory = directory,
        Durability = Durability,
        ClusterId = cluster,
        MaxTransactionsPerBlock = TestChain.MaxTransactions,
        PageSizeBits = 16,
        MemorySizeBits = 18,
        SegmentSizeBits = 20,
        MaxCommitLagBytes = 64 << 10,
        MemoryCommitIntervalUs = 50_000,
    };

    /// <summary>Opens the journal again (or for the first time); disposed at the end of the test if the test does not.</summary>
    public IJournal Open(ClusterId cluster)
    {
        IJournal journal = OpenJournal(cluster);
        _opened.Add(journal);
        return journal;
    }

    protected abstract IJournal OpenJournal(ClusterId cluster);

    /// <summary>The process dies under <paramref name="journal"/>: no clean close. With <paramref name="tearLastWrite"/>, a partial entry follows the last commit on the device.</summary>
    public abstract void Crash(IJournal journal, bool tearLastWrite);

    /// <summary>The next append of <paramref name="journal"/> fails as a failing device makes it fail.</summary>
    public abstract void FailNextAppend(IJournal journal);

    /// <summary>Flips a byte of the closed journal at <paramref name="address"/>, at rest.</summary>
    public abstract void FlipByte(long address);

    public virtual void Dispose()
    {
        foreach (IJournal journal in _opened)
        {
            try
            {
                journal.Dispose();
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
            {
                // A journal a failed test left faulted: its fault was the test's to report.
            }
        }
    }
}

internal sealed class FasterLogHarness(Durability durability) : JournalHarness(durability)
{
    private readonly TempDirectory _temp = new("journal-contract");

    private string Directory => _temp.Sub("j");

    public override bool CommitsOnlyWhenTold => false;

    protected override IJournal OpenJournal(ClusterId cluster) => Journal.Open(Settings(Directory, cluster));

    /// <summary>
    /// <see cref="Journal.CrashForTest"/>: no commit after this instant, files closed as a killed
    /// process leaves them. A torn write is then laid after the last commit, as a write cut short by
    /// the crash leaves one: a length promising 4,000 bytes, 1,000 of them there.
    /// </summary>
    public override void Crash(IJournal journal, bool tearLastWrite)
    {
        ((Journal)journal).CrashForTest();
        if (!tearLastWrite)
        {
            return;
        }
        long committedEnd;
        using (JournalReader reader = JournalReader.Open(Directory))
        {
            committedEnd = reader.CommittedUntil;
        }
        var torn = new byte[4 + 1000];
        BinaryPrimitives.WriteInt32LittleEndian(torn, 4000);
        new Random(Seed).NextBytes(torn.AsSpan(4));
        using FileStream file = File.Open(Path.Combine(Directory, Journal.SegmentPrefix + ".0"), FileMode.Open, FileAccess.ReadWrite);
        file.Position = committedEnd; // segment 0: the file offset is the log address
        file.Write(torn);
    }

    public override void FailNextAppend(IJournal journal) => ((Journal)journal).FailAppendAfter(0);

    public override void FlipByte(long address)
    {
        using FileStream file = File.Open(Path.Combine(Directory, Journal.SegmentPrefix + ".0"), FileMode.Open, FileAccess.ReadWrite);
        file.Position = address;
        int b = file.ReadByte();
        file.Position = address;
        file.WriteByte((byte)(b ^ 0x20));
    }

    public override void Dispose()
    {
        base.Dispose();
        _temp.Dispose();
    }
}

internal sealed class SimulatedHarness(Durability durability) : JournalHarness(durability)
{
    public SimulatedJournalDevice Device { get; } = new("contract");

    public override bool CommitsOnlyWhenTold => true;

    protected override IJournal OpenJournal(ClusterId cluster) => SimulatedJournal.Open(Device, Settings("simulated", cluster));

    public override void Crash(IJournal journal, bool tearLastWrite)
    {
        Assert.That(((SimulatedJournal)journal).Device, Is.SameAs(Device));
        long pending = Device.TailAddress - Device.CommittedUntil;
        Device.Crash(new Random(Seed), tearLastWrite);
        if (tearLastWrite)
        {
            Assert.That(Device.BytesBeyondCommit, Is.InRange(1L, pending - 1), "the crash tore the pending write");
        }
    }

    public override void FailNextAppend(IJournal journal) => Device.FailNextWrite(SimulatedWriteFault.Append);

    public override void FlipByte(long address) => Device.FlipByte(address);
}
