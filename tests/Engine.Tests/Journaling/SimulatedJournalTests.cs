using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Tests.Support;

namespace Engine.Tests.Journaling;

/// <summary>
/// What the simulated journal's device adds to the contract (<see cref="JournalContractTests"/>):
/// commits only when the simulator completes them, crashes decided by a seed, armed faults, waits
/// handed to the simulator; and, against the FasterLog journal, the same chain at the same addresses.
/// </summary>
public class SimulatedJournalTests
{
    private static readonly ClusterId s_cluster = ClusterId.Parse("e0e1e2e3e4e5e6e7e8e9eaebecedeeef");

    private static JournalSettings Settings(Durability durability = Durability.Disk, string directory = "simulated") => new()
    {
        Directory = directory,
        Durability = durability,
        ClusterId = s_cluster,
        MaxTransactionsPerBlock = TestChain.MaxTransactions,
        PageSizeBits = 16,
        MemorySizeBits = 18,
        SegmentSizeBits = 20,
        MaxCommitLagBytes = 64 << 10,
    };

    [Test]
    public void Commits_happen_only_when_the_simulator_completes_them()
    {
        var device = new SimulatedJournalDevice();
        using SimulatedJournal journal = SimulatedJournal.Open(device, Settings());
        long genesisEnd = journal.CommittedUntil;
        var chain = new TestChain(journal.Head);
        long first = journal.Append(chain.Next(3));
        long second = journal.Append(chain.Next(4));
        Assert.Multiple(() =>
        {
            Assert.That(journal.CommittedUntil, Is.EqualTo(genesisEnd), "appending commits nothing");
            Assert.That(journal.IsDurable(first), Is.False);
            Assert.That(device.HasPending, Is.True);
            Assert.That(JournalContractTests.ScanAll(journal), Has.Count.EqualTo(1), "a scan sees genesis only");
        });
        Assert.That(device.CommitPending(), Is.True);
        Assert.Multiple(() =>
        {
            Assert.That(journal.CommittedUntil, Is.EqualTo(device.TailAddress), "one commit covers everything appended");
            Assert.That(journal.IsDurable(second), Is.True);
            Assert.That(device.HasPending, Is.False);
            Assert.That(device.CommitPending(), Is.False, "nothing left to commit");
            Assert.That(device.Commits, Is.EqualTo(2), "genesis, then the one commit");
        });
    }

    [Test]
    public void A_crash_loses_exactly_the_uncommitted_and_the_journal_it_killed_refuses_every_call()
    {
        var device = new SimulatedJournalDevice();
        SimulatedJournal journal = SimulatedJournal.Open(device, Settings());
        var chain = new TestChain(journal.Head);
        long committed = journal.Append(chain.Next(3));
        device.CommitPending();
        ChainHead head = chain.Head;
        journal.Append(chain.Next(3));
        device.Crash(new Random(1), tearLastWrite: false);

        Assert.Multiple(() =>
        {
            Assert.That(device.IsOpen, Is.False);
            Assert.That(device.BytesBeyondCommit, Is.Zero, "an untorn crash leaves nothing after the commit");
            Assert.That(() => journal.Append(chain.Next(1)), Throws.InstanceOf<ObjectDisposedException>().With.Message.Contains("crashed"));
            Assert.That(() => journal.WaitDurable(committed), Throws.InstanceOf<ObjectDisposedException>());
            Assert.That(() => journal.Scan((_, _) => true), Throws.InstanceOf<ObjectDisposedException>());
            Assert.That(journal.Dispose, Throws.Nothing, "disposing the dead journal does nothing");
            Assert.That(device.CommitPending(), Is.False, "no process, nothing to commit");
        });
        using SimulatedJournal reopened = SimulatedJournal.Open(device, Settings());
        Assert.That(reopened.Head, Is.EqualTo(head));
        Assert.That(device.LastRecoveryCut, Is.Zero);
    }

    [Test]
    public void A_torn_crash_leaves_part_of_the_pending_write_after_the_commit_and_the_seed_decides_where()
    {
        var torn = new Dictionary<int, long>();
        for (int seed = 0; seed < 20; seed++)
        {
            long first = TornCrash(seed, out ChainHead committed, out SimulatedJournalDevice device, out long pending);
            Assert.That(first, Is.InRange(1L, pending - 1), $"seed {seed}: part of the pending write, not all of it");
            Assert.That(TornCrash(seed, out _, out _, out _), Is.EqualTo(first), $"seed {seed}: the same seed tears at the same byte");
            torn[seed] = first;

            using SimulatedJournal reopened = SimulatedJournal.Open(device, Settings());
            Assert.Multiple(() =>
            {
                Assert.That(device.LastRecoveryCut, Is.EqualTo(first), $"seed {seed}: recovery cut the torn bytes");
                Assert.That(device.BytesBeyondCommit, Is.Zero);
                Assert.That(reopened.Head, Is.EqualTo(committed), $"seed {seed}: back to the last commit");
            });
        }
        Assert.That(torn.Values.Distinct().Count(), Is.GreaterThan(10), "seeds tear at different places");
    }

    private static long TornCrash(int seed, out ChainHead committed, out SimulatedJournalDevice device, out long pending)
    {
        device = new SimulatedJournalDevice();
        SimulatedJournal journal = SimulatedJournal.Open(device, Settings());
        var chain = new TestChain(journal.Head);
        journal.Append(chain.Next(2));
        device.CommitPending();
        committed = chain.Head;
        for (int i = 0; i < 4; i++)
        {
            journal.Append(chain.Next(5 + 7 * i));
        }
        pending = device.TailAddress - device.CommittedUntil;
        device.Crash(new Random(seed), tearLastWrite: true);
        return device.BytesBeyondCommit;
    }

    [Test]
    public void A_failed_commit_is_the_sticky_fault_and_loses_what_it_carried()
    {
        var device = new SimulatedJournalDevice();
        ChainHead committed;
        using (SimulatedJournal journal = SimulatedJournal.Open(device, Settings()))
        {
            bool told = false;
            using CancellationTokenRegistration registration = journal.FaultToken.Register(() => told = true);
            var chain = new TestChain(journal.Head);
            journal.Append(chain.Next(2));
            device.CommitPending();
            committed = chain.Head;
            long committedUntil = journal.CommittedUntil;
            long lost = journal.Append(chain.Next(2));

            device.FailNextWrite(SimulatedWriteFault.Commit);
            Assert.That(device.CommitPending(), Is.False, "the commit failed");
            Assert.Multiple(() =>
            {
                Assert.That(journal.Fault, Is.InstanceOf<IOException>().With.Message.Contains("failed a commit"));
                Assert.That(told, Is.True, "told on the fault token");
                Assert.That(journal.CommittedUntil, Is.EqualTo(committedUntil), "nothing was committed");
                Assert.That(() => journal.WaitDurable(lost), Throws.InstanceOf<JournalFaultException>());
                Assert.That(journal.Flush, Throws.InstanceOf<JournalFaultException>(), "the flush would have to commit");
                Assert.That(() => journal.Append(chain.Next(1)), Throws.InstanceOf<JournalFaultException>());
                Assert.That(device.CommitPending(), Is.False, "no commit after a fault, though one is pending");
            });
        }
        using SimulatedJournal reopened = SimulatedJournal.Open(device, Settings());
        Assert.That(reopened.Head, Is.EqualTo(committed));
    }

    [Test]
    public void A_wait_is_handed_to_the_simulator_which_must_complete_it()
    {
        var device = new SimulatedJournalDevice();
        using SimulatedJournal journal = SimulatedJournal.Open(device, Settings());
        var chain = new TestChain(journal.Head);
        long address = journal.Append(chain.Next(2));

        var steps = new List<string>();
        device.BlockUntil = done =>
        {
            steps.Add($"asked, done={done()}");
            device.CommitPending();
            steps.Add($"committed, done={done()}");
        };
        journal.WaitDurable(address);
        Assert.That(string.Join(" | ", steps), Is.EqualTo("asked, done=False | committed, done=True"));

        device.BlockUntil = _ => { };
        long stuck = journal.Append(chain.Next(2));
        Assert.That(() => journal.WaitDurable(stuck), Throws.InvalidOperationException.With.Message.Contains("wait forever"),
            "a simulation that returns without the commit would hang the real journal: it is told, not hidden");
        Assert.That(journal.Flush, Throws.InvalidOperationException);

        device.BlockUntil = _ => device.Crash(new Random(0), tearLastWrite: false);
        Assert.That(() => journal.WaitDurable(stuck), Throws.InstanceOf<ObjectDisposedException>(), "the process crashed while it waited");
    }

    [Test]
    public void Over_the_commit_lag_an_append_waits_in_memory_durability()
    {
        var device = new SimulatedJournalDevice();
        int lagBytes = BlockFormat.MaxEntryBytes(TestChain.MaxTransactions) + 4;
        using SimulatedJournal journal = SimulatedJournal.Open(device, Settings(Durability.Memory) with { MaxCommitLagBytes = lagBytes });
        int waits = 0;
        device.BlockUntil = _ =>
        {
            waits++;
            Assert.That(device.TailAddress - device.CommittedUntil, Is.GreaterThan(lagBytes), "asked only over the lag");
            device.CommitPending();
        };
        var chain = new TestChain(journal.Head);
        for (int i = 0; i < 10; i++)
        {
            journal.Append(chain.Next(40));
            Assert.That(device.TailAddress - device.CommittedUntil, Is.LessThanOrEqualTo(lagBytes + SimulatedJournalDevice.Allocated(BlockFormat.EntryBytes(40))));
        }
        Assert.That(waits, Is.GreaterThan(0));
        device.BlockUntil = null; // the flush of the closing dispose is not an append's wait
    }

    [Test]
    public void One_journal_at_a_time_on_a_device()
    {
        var device = new SimulatedJournalDevice();
        using SimulatedJournal journal = SimulatedJournal.Open(device, Settings());
        Assert.That(() => SimulatedJournal.Open(device, Settings()), Throws.InvalidOperationException);
    }

    [Test]
    public void A_failed_genesis_commit_leaves_the_device_uncreated_and_the_next_open_starts_afresh()
    {
        var device = new SimulatedJournalDevice();
        device.FailNextWrite(SimulatedWriteFault.Commit);
        Assert.That(() => SimulatedJournal.Open(device, Settings()), Throws.InstanceOf<IOException>());
        Assert.Multiple(() =>
        {
            Assert.That(device.Created, Is.False);
            Assert.That(device.IsOpen, Is.False);
        });
        using SimulatedJournal journal = SimulatedJournal.Open(device, Settings());
        Assert.That(journal.Head.BlockNo, Is.EqualTo(BlockFormat.GenesisBlockNo));
        Assert.That(device.Created, Is.True);
    }

    [Test]
    public void An_append_fault_armed_before_opening_fails_the_first_append_not_genesis()
    {
        var device = new SimulatedJournalDevice();
        device.FailNextWrite(SimulatedWriteFault.Append);
        using SimulatedJournal journal = SimulatedJournal.Open(device, Settings());
        Assert.That(() => journal.Append(new TestChain(journal.Head).Next(1)), Throws.InstanceOf<JournalFaultException>());
        Assert.That(journal.Fault, Is.Not.Null);
    }

    /// <summary>
    /// The two journals given the same settings and the same blocks hold the same chain: the same
    /// genesis, the same heads, and (within one page, where FasterLog moves no entry) the same addresses.
    /// </summary>
    [Test]
    public void The_simulated_and_the_FasterLog_journal_hold_the_same_chain_at_the_same_addresses([Values] Durability durability)
    {
        using var temp = new TempDirectory("journal-sim-vs-faster");
        var device = new SimulatedJournalDevice();
        var blocks = new List<byte[]>();
        List<ScannedBlock> real, simulated;
        ChainHead realHead, simulatedHead;
        using (Journal journal = Journal.Open(Settings(durability, temp.Sub("j"))))
        using (SimulatedJournal twin = SimulatedJournal.Open(device, Settings(durability)))
        {
            Assert.That(twin.Head, Is.EqualTo(journal.Head), "the same genesis");
            var chain = new TestChain(journal.Head);
            for (int i = 0; i < 6; i++)
            {
                blocks.Add(chain.Next(1 + 11 * i));
                Assert.That(twin.Append(blocks[^1]), Is.EqualTo(journal.Append(blocks[^1])), $"block {i + 1}'s address");
            }
            Assert.That(device.TailAddress, Is.LessThan(1L << 16), "within one page");
        }
        using (Journal journal = Journal.Open(Settings(durability, temp.Sub("j"))))
        using (SimulatedJournal twin = SimulatedJournal.Open(device, Settings(durability)))
        {
            real = JournalContractTests.ScanAll(journal);
            simulated = JournalContractTests.ScanAll(twin);
            realHead = journal.Head;
            simulatedHead = twin.Head;
        }
        Assert.Multiple(() =>
        {
            Assert.That(simulatedHead, Is.EqualTo(realHead));
            Assert.That(simulated, Is.EqualTo(real));
            Assert.That(real, Has.Count.EqualTo(blocks.Count + 1));
        });
    }
}
