using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;
using Engine.Replication;
using Engine.Replication.Pair;
using Engine.Sim;

namespace Engine.Tests.Pair;

/// <summary>
/// <see cref="PairNode"/> one transition at a time, driven by hand (no network, no simulator): the
/// cases the simulator found or can no longer reach because other rules mask them, pinned down.
/// </summary>
public class PairNodeTests
{
    private static readonly ChainHead s_head = new(1, 5, 50, Hash32.From(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));

    /// <summary>
    /// Without a witness a backup that loses its primary takes over at once, so only its own rule
    /// keeps one that is still catching up (it may lack what the primary acknowledged alone) from
    /// doing so. With the witness the simulator cannot see this bug any more: the primary holds the
    /// lease until the catch-up is acknowledged, so the witness refuses the takeover.
    /// </summary>
    [TestCase(PairMutation.None, PairState.Following)]
    [TestCase(PairMutation.TakeOverWhileCatchingUp, PairState.Primary)]
    public void A_backup_that_loses_its_primary_while_catching_up_never_takes_over(PairMutation mutation, PairState after)
    {
        var rig = new Rig(PairRole.Backup, witness: false, mutation);
        int link = rig.Transport.Connects.Single();
        rig.Node.OnConnected(link);
        rig.Node.OnFrame(link, ReplicationType.HelloAck, Payload(ReplicationFrame.Hello(ReplicationType.HelloAck, 0, s_head)));
        Assert.That(rig.Node.State, Is.EqualTo(PairState.Following), "catching up");

        rig.Node.OnClosed(link);

        Assert.That(rig.Node.State, Is.EqualTo(after));
    }

    /// <summary>
    /// A block that waited at the ack gate when the backup's link broke, and that the backup had
    /// journaled already: the backup comes back with it as its head, and nothing else is sealed (its
    /// client only resends that request). Its hello acknowledges it; before, it waited for good
    /// (found by the simulator, 2026-12-03).
    /// </summary>
    [Test]
    public void A_backup_whose_hello_names_a_block_acknowledges_it()
    {
        var rig = new Rig(PairRole.Primary, witness: false);
        Assert.That(rig.Node.State, Is.EqualTo(PairState.Primary));
        rig.Node.OnAccepted(1);
        rig.Node.OnFrame(1, ReplicationType.Hello, Payload(ReplicationFrame.Hello(ReplicationType.Hello, 0, rig.Ledger.Head)));
        byte[] block = rig.Ledger.SealOne();
        BlockFormat.TryReadHeader(block, out BlockHeader header);
        rig.Node.OnBlockSealed(block, header.BlockNo, BlockFormat.StoredHash(block, in header));
        Assert.That(rig.Node.IsAcknowledged(header.BlockNo), Is.False, "not acknowledged yet");
        rig.Node.OnClosed(1); // the link breaks before the ack comes

        rig.Node.OnAccepted(2);
        rig.Node.OnFrame(2, ReplicationType.Hello, Payload(ReplicationFrame.Hello(ReplicationType.Hello, 0, rig.Ledger.Head)));

        Assert.That(rig.Node.IsAcknowledged(header.BlockNo), Is.True);
    }

    /// <summary>The backup's round trip in /status: a live block is timed from its send to the acknowledgement that covers it.</summary>
    [Test]
    public void A_live_block_is_timed_from_its_send_to_its_acknowledgement()
    {
        var rig = new Rig(PairRole.Primary, witness: false);
        rig.Node.OnAccepted(1);
        rig.Node.OnFrame(1, ReplicationType.Hello, Payload(ReplicationFrame.Hello(ReplicationType.Hello, 0, rig.Ledger.Head)));
        byte[] block = rig.Ledger.SealOne();
        BlockFormat.TryReadHeader(block, out BlockHeader header);
        Hash32 hash = BlockFormat.StoredHash(block, in header);
        rig.Node.OnBlockSealed(block, header.BlockNo, hash);
        Assert.That(rig.Node.BackupRoundTrip.Summary().Count, Is.Zero, "nothing acknowledged yet");

        rig.Clock.RunUntil(rig.Clock.Now + (3 * SimClock.NanosPerMs));
        var ack = new byte[ReplicationFrame.HeaderBytes + ReplicationFrame.AckBytes];
        ReplicationFrame.WriteAck(ack, ReplicationType.Ack, header.BlockNo, hash);
        rig.Node.OnFrame(1, ReplicationType.Ack, Payload(ack));

        Assert.That(rig.Node.IsAcknowledged(header.BlockNo), Is.True);
        Core.Server.LatencySummary roundTrip = rig.Node.BackupRoundTrip.Summary();
        Assert.That(roundTrip.Count, Is.EqualTo(1));
        Assert.That(roundTrip.P50Us, Is.InRange(2_990, 3_010));
    }

    /// <summary>
    /// A primary reads its journal to answer a joining backup's hello, and that read commits what the
    /// pipeline appended first; when the commit fails, the node halts (its journal is gone). Before,
    /// the exception left the pair node in the middle of a step, out through the host's read loop
    /// (found by the simulator once its journal was the simulated device, 2026-12-03).
    /// </summary>
    [Test]
    public void A_primary_whose_journal_fails_under_a_hello_halts()
    {
        var rig = new Rig(PairRole.Primary, witness: false);
        rig.Ledger.FailReads = true;
        rig.Node.OnAccepted(1);

        rig.Node.OnFrame(1, ReplicationType.Hello, Payload(ReplicationFrame.Hello(ReplicationType.Hello, 0, rig.Ledger.Head)));

        Assert.That(rig.Node.State, Is.EqualTo(PairState.Halted));
        Assert.That(rig.Events.Select(e => e.Kind), Does.Contain(PairEventKind.JournalFailed));
    }

    /// <summary>
    /// The holder of the witness's lease restarted as a backup with no primary to follow: it asks to
    /// RESUME after twice the silence and, granted (it is the holder), serves in the epoch it asked
    /// for. Without it both nodes stayed backups until the operator stepped in.
    /// </summary>
    [Test]
    public void A_backup_with_no_primary_resumes_when_the_witness_names_it_the_holder()
    {
        var rig = new Rig(PairRole.Backup, witness: true);
        rig.Node.OnClosed(rig.Transport.Connects.Single()); // nobody there
        rig.Advance(new PairSettings().SilenceMs * 2 + 50);
        (int request, WitnessRequest asked) = rig.Witness.Asked.Single();
        Assert.That(asked, Is.EqualTo(new WitnessRequest(WitnessVerb.Resume, s_head.Epoch + 1)));

        rig.Node.OnWitnessAnswer(request, new WitnessAnswer.Granted(2000));

        Assert.That(rig.Node.State, Is.EqualTo(PairState.Primary));
        Assert.That(rig.Node.Epoch, Is.EqualTo(s_head.Epoch + 1));
        Assert.That(rig.Events.Any(e => e.Kind == PairEventKind.TakeOver), Is.True);
    }

    [Test]
    public void A_backup_that_is_not_the_holder_keeps_following()
    {
        var rig = new Rig(PairRole.Backup, witness: true);
        rig.Node.OnClosed(rig.Transport.Connects.Single());
        rig.Advance(new PairSettings().SilenceMs * 2 + 50);
        (int request, _) = rig.Witness.Asked.Single();

        rig.Node.OnWitnessAnswer(request, new WitnessAnswer.Denied("A", 1, WitnessRefusal.NotHolder));

        Assert.That(rig.Node.State, Is.EqualTo(PairState.Following));
    }

    /// <summary>
    /// Both nodes backups and nobody holding the witness's lease (a node took over, sealed nothing,
    /// gave the lease back when the other caught up, and then failed): the backup asks its peer for
    /// its journal's head and, when the peer is a backup whose head is on its own chain, asks the
    /// witness to take over above the highest epoch the witness named; when the peer's chain is not on
    /// its own (the peer may hold acknowledged blocks it lacks) it keeps following. Before, both stayed
    /// backups until the operator stepped in, and the operator's restart as primary stepped down again
    /// (found by the simulator once journals could fail: seeds 1469 and 1882).
    /// </summary>
    [TestCase(true, PairMutation.None, PairState.Primary)]
    [TestCase(false, PairMutation.None, PairState.Following)]
    [TestCase(false, PairMutation.TakeOverOnAnyPeerHead, PairState.Primary)]
    public void A_backup_with_no_primary_and_the_lease_free_takes_over_only_when_it_holds_the_peers_chain(bool peerOnOurChain, PairMutation mutation, PairState after)
    {
        var rig = new Rig(PairRole.Backup, witness: true, mutation);
        rig.Node.OnClosed(rig.Transport.Connects.Single());
        rig.Advance(new PairSettings().SilenceMs * 2 + 50);
        (int resume, _) = rig.Witness.Asked.Single();
        rig.Node.OnWitnessAnswer(resume, new WitnessAnswer.Denied(null, 7, WitnessRefusal.NotHolder));
        int probe = rig.Transport.Connects[^1];
        rig.Node.OnConnected(probe);
        ChainHead peer = peerOnOurChain ? s_head : new ChainHead(1, 5, 50, Hash32.From(Enumerable.Repeat((byte)0xEE, 32).ToArray()));

        rig.Node.OnFrame(probe, ReplicationType.HelloAck, Payload(ReplicationFrame.Hello(ReplicationType.HelloAck, ReplicationFrame.HeadProbe, peer)));

        if (after == PairState.Primary)
        {
            (int takeover, WitnessRequest asked) = rig.Witness.Asked[^1];
            Assert.That(asked, Is.EqualTo(new WitnessRequest(WitnessVerb.Acquire, 8)), "above the witness's highest epoch");
            rig.Node.OnWitnessAnswer(takeover, new WitnessAnswer.Granted(2000));
            Assert.That(rig.Node.Epoch, Is.EqualTo(8UL));
        }
        else
        {
            Assert.That(rig.Witness.Asked, Has.Count.EqualTo(1), "no takeover asked");
        }
        Assert.That(rig.Node.State, Is.EqualTo(after));
        Assert.That(rig.Transport.Closed, Does.Contain(probe), "the probe's connection closed");
    }

    /// <summary>A connect the host never answers (lost in a partition) must not hold the backup for good: it gives up and connects again.</summary>
    [Test]
    public void A_connect_never_answered_is_given_up_and_tried_again()
    {
        var rig = new Rig(PairRole.Backup, witness: false);
        Assert.That(rig.Transport.Connects, Has.Count.EqualTo(1));
        var settings = new PairSettings();
        rig.Advance((2 * Math.Max(settings.SilenceMs, settings.PeerProbeTimeoutMs)) + 300);
        Assert.That(rig.Transport.Closed, Does.Contain(rig.Transport.Connects[0]), "the first connect given up");
        Assert.That(rig.Transport.Connects, Has.Count.GreaterThan(1), "and another made");
    }

    /// <summary>
    /// A backup whose snapshot replica computes the state checksums (off the apply thread) may have
    /// its own for a block only after the primary's arrived: the primary's is kept and compared
    /// when the backup's comes. Before, it was dropped, and that block never compared.
    /// </summary>
    [TestCase(true, PairEventKind.ChecksumMatched)]
    [TestCase(false, PairEventKind.StateMismatch)]
    public void A_primary_checksum_that_comes_before_the_backups_own_is_compared_when_it_comes(bool same, PairEventKind expected)
    {
        var rig = new Rig(PairRole.Backup, witness: false);
        int link = rig.Transport.Connects.Single();
        rig.Node.OnConnected(link);
        rig.Node.OnFrame(link, ReplicationType.HelloAck, Payload(ReplicationFrame.Hello(ReplicationType.HelloAck, 0, s_head)));
        Hash32 primary = Hash32.From(Enumerable.Repeat((byte)7, 32).ToArray());
        byte[] frame = new byte[ReplicationFrame.HeaderBytes + ReplicationFrame.AckBytes];
        ReplicationFrame.WriteAck(frame, ReplicationType.StateChecksum, 5, in primary);

        rig.Node.OnFrame(link, ReplicationType.StateChecksum, Payload(frame));
        Assert.That(rig.Events.Select(e => e.Kind), Has.None.EqualTo(PairEventKind.ChecksumMatched).And.None.EqualTo(PairEventKind.StateMismatch), "nothing to compare with yet");

        rig.Ledger.Checksums[5] = same ? primary : Hash32.From(new byte[32]);
        rig.Advance(20);

        Assert.That(rig.Events.Select(e => e.Kind), Does.Contain(expected));
        Assert.That(rig.Node.State == PairState.Halted, Is.EqualTo(!same), "a mismatch halts the backup");
    }

    /// <summary>
    /// A joining backup's catch-up is streamed: the hello sends <see cref="PairNode.CatchUpWindow"/>
    /// batches and returns (the host's lock, and with it the sealer, is held for one batch's read, not
    /// the whole history), each ack sends more, and the backup goes live only once every block sealed
    /// meanwhile was sent. Before, the hello sent the whole history in one step.
    /// </summary>
    [Test]
    public void A_catch_up_is_streamed_a_window_of_batches_at_a_time()
    {
        var rig = new Rig(PairRole.Primary, witness: false);
        for (int i = 0; i < 30_000; i++)
        {
            rig.Ledger.SealOne();
        }
        rig.Node.OnBlockSealed([], rig.Ledger.Head.BlockNo, rig.Ledger.Head.Hash); // the node's last sealed block (no backup yet: nothing is sent)
        JournalPairLedger backup = SimulatedLedger.Open("backup");
        rig.Node.OnAccepted(1);
        rig.Node.OnFrame(1, ReplicationType.Hello, Payload(ReplicationFrame.Hello(ReplicationType.Hello, 0, backup.Head)));

        var unpacked = new byte[CatchUpBatch.MaxRawBytes];
        int batches = 0;
        bool caughtUp = false;
        byte[]? sealedDuring = null;
        for (int round = 0; round < 100 && !caughtUp; round++)
        {
            List<byte[]> frames = rig.Transport.Take(1);
            List<byte[]> catchUp = [.. frames.Where(f => (ReplicationType)f[4] == ReplicationType.CatchUpBatch)];
            Assert.That(catchUp, Has.Count.LessThanOrEqualTo(PairNode.CatchUpWindow), "never more batches unacknowledged than the window");
            if (round == 0)
            {
                Assert.That(catchUp, Has.Count.EqualTo(PairNode.CatchUpWindow), "the hello sends a window's worth, not everything");
                Assert.That(rig.Node.BackupInStep, Is.False, "not live before the catch-up is sent");
                // A block sealed while the catch-up streams goes with it (not live, not lost).
                sealedDuring = rig.Ledger.SealOne();
                BlockFormat.TryReadHeader(sealedDuring, out BlockHeader sealedHeader);
                rig.Node.OnBlockSealed(sealedDuring, sealedHeader.BlockNo, BlockFormat.StoredHash(sealedDuring, in sealedHeader));
            }
            foreach (byte[] frame in frames)
            {
                switch ((ReplicationType)frame[4])
                {
                    case ReplicationType.CatchUpBatch:
                        batches++;
                        CatchUpBatch.Reader reader = CatchUpBatch.Open(Payload(frame), unpacked);
                        while (reader.TryNext(out ReadOnlySpan<byte> block))
                        {
                            Assert.That(backup.AppendReplicated(block), Is.Null);
                        }
                        var ack = new byte[ReplicationFrame.HeaderBytes + ReplicationFrame.AckBytes];
                        ReplicationFrame.WriteAck(ack, ReplicationType.Ack, backup.Head.BlockNo, backup.Head.Hash);
                        rig.Node.OnFrame(1, ReplicationType.Ack, Payload(ack));
                        break;
                    case ReplicationType.CaughtUp:
                        caughtUp = true;
                        break;
                }
            }
        }

        Assert.That(caughtUp, Is.True);
        Assert.That(batches, Is.GreaterThan(PairNode.CatchUpWindow));
        Assert.That(backup.Head, Is.EqualTo(rig.Ledger.Head), "the backup holds every block, the one sealed during the catch-up too");
        Assert.That(rig.Node.BackupInStep, Is.True);
        Assert.That(rig.Node.BackupHoldsEverything, Is.True, "its acks cover the whole catch-up");
    }

    /// <summary>
    /// A primary counts its backup as holding everything (and gives the witness's lease back) only
    /// once the backup acknowledged the last block of its catch-up, not once that block was sent: a
    /// backup that lost the last batch must not take over on a lease given back too early.
    /// </summary>
    [TestCase(PairMutation.None, false)]
    [TestCase(PairMutation.ReleaseLeaseOnCatchUpSent, true)]
    public void A_backup_holds_everything_once_its_catch_up_is_acknowledged(PairMutation mutation, bool holdsBeforeLastAck)
    {
        var rig = new Rig(PairRole.Primary, witness: false, mutation);
        for (int i = 0; i < 2_000; i++)
        {
            rig.Ledger.SealOne();
        }
        rig.Node.OnBlockSealed([], rig.Ledger.Head.BlockNo, rig.Ledger.Head.Hash);
        JournalPairLedger backup = SimulatedLedger.Open("backup");
        rig.Node.OnAccepted(1);
        rig.Node.OnFrame(1, ReplicationType.Hello, Payload(ReplicationFrame.Hello(ReplicationType.Hello, 0, backup.Head)));
        List<byte[]> frames = rig.Transport.Take(1);
        Assert.That(frames.Select(f => (ReplicationType)f[4]), Does.Contain(ReplicationType.CaughtUp), "a catch-up within one window: sent at once");
        Assert.That(rig.Node.BackupInStep, Is.True);

        Assert.That(rig.Node.BackupHoldsEverything, Is.EqualTo(holdsBeforeLastAck), "sent, not yet acknowledged");

        var unpacked = new byte[CatchUpBatch.MaxRawBytes];
        foreach (byte[] frame in frames.Where(f => (ReplicationType)f[4] == ReplicationType.CatchUpBatch))
        {
            CatchUpBatch.Reader reader = CatchUpBatch.Open(Payload(frame), unpacked);
            while (reader.TryNext(out ReadOnlySpan<byte> block))
            {
                Assert.That(backup.AppendReplicated(block), Is.Null);
            }
        }
        var ack = new byte[ReplicationFrame.HeaderBytes + ReplicationFrame.AckBytes];
        ReplicationFrame.WriteAck(ack, ReplicationType.Ack, backup.Head.BlockNo, backup.Head.Hash);
        rig.Node.OnFrame(1, ReplicationType.Ack, Payload(ack));
        Assert.That(rig.Node.BackupHoldsEverything, Is.True, "acknowledged");
    }

    /// <summary>
    /// A new backup of a primary whose journal starts at a snapshot (compacted) installs the newest
    /// snapshot and gets only the blocks after it: its journal starts at the snapshot's block, its state
    /// equals the primary's, and it recovers on its own from that base after a restart.
    /// </summary>
    /// <summary>
    /// A backup with nothing but genesis (new, or one that set a diverged chain aside) of a primary whose
    /// journal still holds the whole chain gets the blocks, not the snapshot: the history stays in both
    /// journals (found by the attached drill: after two divergences, neither node's journal held the
    /// orders before the snapshot either had installed).
    /// </summary>
    [Test]
    public void A_backup_with_only_genesis_gets_the_history_while_the_primary_holds_it()
    {
        JournalPairLedger primary = SimulatedLedger.Open(new SimulatedJournalDevice("primary"), new SimSnapshotDisk("primary"));
        var rig = new Rig(PairRole.Primary, witness: false, chain: primary);
        for (int i = 0; i < 250; i++)
        {
            primary.SealOne();
        }
        while (!primary.Snapshots!.Step())
        {
        }
        Assert.That(primary.Snapshots.Status.SnapshotBlock, Is.EqualTo(200UL), "a snapshot it could send");
        rig.Node.OnBlockSealed([], primary.Head.BlockNo, primary.Head.Hash);
        JournalPairLedger backup = SimulatedLedger.Open(new SimulatedJournalDevice("backup"), new SimSnapshotDisk("backup"));
        rig.Node.OnAccepted(1);
        rig.Node.OnFrame(1, ReplicationType.Hello, Payload(ReplicationFrame.Hello(ReplicationType.Hello, 0, backup.Head)));

        List<byte[]> frames = rig.Transport.Take(1);
        ReplicationFrame.ReadHello(Payload(frames.Single(f => (ReplicationType)f[4] == ReplicationType.HelloAck)), out byte status);
        Assert.That(status, Is.Not.EqualTo(ReplicationFrame.SnapshotFollows));
        Assert.That(frames.Select(f => (ReplicationType)f[4]), Has.Some.EqualTo(ReplicationType.CatchUpBatch).And.None.EqualTo(ReplicationType.SnapshotChunk));
    }

    /// <summary>
    /// Keeping the history after a snapshot's install reads the journal set aside beside the pair; a node
    /// that must replace its journal again stops it first. A carry that does not stop (its FasterLog read
    /// never returns: the aside was deleted under it by the drill's cleanup) held the node there for good,
    /// and the pair never re-formed (the 300-round drill, 2026-12-04). Now the node goes on without it.
    /// </summary>
    [Test]
    public void A_history_carry_that_does_not_stop_does_not_hold_the_node()
    {
        JournalPairLedger primary = SimulatedLedger.Open(new SimulatedJournalDevice("primary"), new SimSnapshotDisk("primary"));
        for (int i = 0; i < 150; i++)
        {
            primary.SealOne();
        }
        while (!primary.Snapshots!.Step())
        {
        }
        ulong at = primary.Snapshots.Status.SnapshotBlock!.Value;
        Assert.That(primary.Journal.Compact(new JournalAnchor(at, primary.Journal.HashOf(at)!.Value), archive: null), Is.Not.Null);
        CatchUpSnapshot sent = primary.SnapshotFor(0)!;
        using var release = new ManualResetEventSlim();
        JournalPairLedger backup = SimulatedLedger.Open(new SimulatedJournalDevice("backup"), new SimSnapshotDisk("backup"),
            keepHistory: (_, _, _) =>
            {
                release.Wait(CancellationToken.None); // deaf to the cancellation, as a read that never returns
                return "kept";
            });
        try
        {
            Assert.That(backup.InstallSnapshot(sent.Content, sent.AnchorBlock), Is.Null);

            var discard = Task.Run(backup.DiscardDivergedChain);

            Assert.That(discard.Wait(TimeSpan.FromSeconds(30)), Is.True, "the node replaced its journal without the carry");
            Assert.That(backup.Head.BlockNo, Is.EqualTo(0UL), "a new journal, from genesis");
        }
        finally
        {
            release.Set();
        }
    }

    [Test]
    public void A_new_backup_installs_the_primary_s_snapshot_and_the_blocks_after_it()
    {
        var primaryDisk = new SimSnapshotDisk("primary");
        JournalPairLedger primary = SimulatedLedger.Open(new SimulatedJournalDevice("primary"), primaryDisk);
        var rig = new Rig(PairRole.Primary, witness: false, chain: primary);
        for (int i = 0; i < 1_050; i++)
        {
            primary.SealOne();
        }
        while (!primary.Snapshots!.Step())
        {
        }
        Assert.That(primary.Snapshots.Status.SnapshotBlock, Is.EqualTo(1_000UL), "snapshots every 100 blocks");
        // Its journal no longer holds the blocks before the snapshot (compacted): a new backup must install it.
        Assert.That(primary.Journal.Compact(new JournalAnchor(1_000, primary.Journal.HashOf(1_000)!.Value), archive: null), Is.Not.Null);
        rig.Node.OnBlockSealed([], primary.Head.BlockNo, primary.Head.Hash);
        var backupDevice = new SimulatedJournalDevice("backup");
        var backupDisk = new SimSnapshotDisk("backup");
        JournalPairLedger backup = SimulatedLedger.Open(backupDevice, backupDisk);
        rig.Node.OnAccepted(1);
        rig.Node.OnFrame(1, ReplicationType.Hello, Payload(ReplicationFrame.Hello(ReplicationType.Hello, 0, backup.Head)));

        var unpacked = new byte[CatchUpBatch.MaxRawBytes];
        byte[]? snapshot = null;
        long received = 0;
        var kinds = new List<ReplicationType>();
        for (int round = 0; round < 100 && !kinds.Contains(ReplicationType.CaughtUp); round++)
        {
            foreach (byte[] frame in rig.Transport.Take(1))
            {
                var type = (ReplicationType)frame[4];
                kinds.Add(type);
                switch (type)
                {
                    case ReplicationType.HelloAck:
                        ReplicationFrame.ReadHello(Payload(frame), out byte status);
                        Assert.That(status, Is.EqualTo(ReplicationFrame.SnapshotFollows));
                        break;
                    case ReplicationType.SnapshotChunk:
                        ReadOnlySpan<byte> chunk = SnapshotTransfer.OpenChunk(Payload(frame), unpacked, out long offset, out long total);
                        snapshot ??= new byte[total];
                        Assert.That(offset, Is.EqualTo(received));
                        chunk.CopyTo(snapshot.AsSpan((int)offset));
                        received += chunk.Length;
                        var chunkAck = new byte[SnapshotTransfer.AckBytes];
                        SnapshotTransfer.WriteAck(chunkAck, received);
                        rig.Node.OnFrame(1, ReplicationType.SnapshotAck, chunkAck);
                        break;
                    case ReplicationType.SnapshotAnchor:
                        Assert.That(rig.Node.BackupInStep, Is.False, "not live before the backup acknowledged the snapshot (installing it may outlast a heartbeat's silence)");
                        Assert.That(backup.InstallSnapshot(snapshot!, Payload(frame)), Is.Null);
                        Ack(rig, backup);
                        break;
                    case ReplicationType.CatchUpBatch:
                        CatchUpBatch.Reader reader = CatchUpBatch.Open(Payload(frame), unpacked);
                        while (reader.TryNext(out ReadOnlySpan<byte> block))
                        {
                            Assert.That(backup.AppendReplicated(block), Is.Null);
                        }
                        Ack(rig, backup);
                        break;
                }
            }
        }

        Assert.That(kinds, Does.Contain(ReplicationType.CaughtUp));
        Assert.That(kinds.IndexOf(ReplicationType.SnapshotAnchor), Is.LessThan(kinds.IndexOf(ReplicationType.CatchUpBatch)), "the snapshot, then the blocks after it");
        Assert.That(backup.Journal.Base?.BlockNo, Is.EqualTo(1_000UL), "the backup's journal starts at the snapshot's block");
        Assert.That(backup.Head, Is.EqualTo(primary.Head));
        Assert.That(backup.Exchange.ComputeChecksum(), Is.EqualTo(primary.Exchange.ComputeChecksum()));
        Assert.That(rig.Node.BackupHoldsEverything, Is.True);

        SimulatedJournalDevice installed = ((SimulatedJournal)backup.Journal).Device;
        Assert.That(installed, Is.Not.SameAs(backupDevice), "the old journal was set aside");
        backup.Dispose();
        JournalPairLedger restarted = SimulatedLedger.Open(installed, backupDisk);
        Assert.That(restarted.Head, Is.EqualTo(primary.Head), "recovers from its base after a restart");
        Assert.That(restarted.Exchange.ComputeChecksum(), Is.EqualTo(primary.Exchange.ComputeChecksum()));
        Assert.That(restarted.Recovery.SnapshotBlock, Is.EqualTo(1_000UL));
    }

    private static void Ack(Rig rig, JournalPairLedger backup)
    {
        var ack = new byte[ReplicationFrame.HeaderBytes + ReplicationFrame.AckBytes];
        ReplicationFrame.WriteAck(ack, ReplicationType.Ack, backup.Head.BlockNo, backup.Head.Hash);
        rig.Node.OnFrame(1, ReplicationType.Ack, Payload(ack));
    }

    private static byte[] Payload(byte[] frame) => frame[ReplicationFrame.HeaderBytes..];

    private sealed class Rig
    {
        public Rig(PairRole role, bool witness, PairMutation mutation = PairMutation.None, JournalPairLedger? chain = null)
        {
            var settings = new PairSettings { Role = role, Peer = role == PairRole.Backup ? "127.0.0.1:1" : null, ReplicationListen = "127.0.0.1:2", Witness = witness ? "127.0.0.1:3" : null };
            Ledger = new Ledger(role == PairRole.Backup ? s_head : null, chain);
            Node = new PairNode("B", settings, Clock, Transport, witness ? Witness : null, Ledger, Events.Add, mutation);
            Node.Start();
        }

        public SimClock Clock { get; } = new();

        public Transport Transport { get; } = new();

        public WitnessPort Witness { get; } = new();

        public Ledger Ledger { get; }

        public List<PairEvent> Events { get; } = [];

        public PairNode Node { get; }

        /// <summary>Moves time by <paramref name="ms"/>, ticking every 10 ms as a host does.</summary>
        public void Advance(int ms)
        {
            for (int i = 0; i < ms / 10; i++)
            {
                Clock.RunUntil(Clock.Now + (10 * SimClock.NanosPerMs));
                Node.Tick();
            }
        }
    }

    private sealed class Transport : IPairTransport
    {
        public List<int> Connects { get; } = [];

        public int Connect()
        {
            Connects.Add(100 + Connects.Count);
            return Connects[^1];
        }

        /// <summary>Every frame sent, whole, with its connection.</summary>
        public List<(int Connection, byte[] Frame)> Sent { get; } = [];

        public void Send(int connection, ReadOnlySpan<byte> frame) => Sent.Add((connection, frame.ToArray()));

        public void Send(int connection, ReplicationType type, ReadOnlySpan<byte> payload)
        {
            var frame = new byte[ReplicationFrame.HeaderBytes + payload.Length];
            ReplicationFrame.Write(frame, type, payload);
            Sent.Add((connection, frame));
        }

        /// <summary>The frames sent on <paramref name="connection"/> since the last call, taken.</summary>
        public List<byte[]> Take(int connection)
        {
            List<byte[]> taken = [.. Sent.Where(s => s.Connection == connection).Select(s => s.Frame)];
            Sent.RemoveAll(s => s.Connection == connection);
            return taken;
        }

        public List<int> Closed { get; } = [];

        public string PeerName(int connection) => "A";

        public void Close(int connection) => Closed.Add(connection);
    }

    private sealed class WitnessPort : IWitnessPort
    {
        public List<(int Request, WitnessRequest What)> Asked { get; } = [];

        public void Ask(int request, WitnessRequest what) => Asked.Add((request, what));
    }

    /// <summary>A backup's ledger that ends at a fixed head (nothing is applied in these tests), or a real chain from genesis for a primary.</summary>
    private sealed class Ledger(ChainHead? fixedHead, JournalPairLedger? chain) : IPairLedger
    {
        private readonly JournalPairLedger _chain = chain ?? SimulatedLedger.Open();

        public ChainHead Head => fixedHead ?? _chain.Head;

        public byte[] SealOne() => _chain.SealOne();

        /// <summary>Reads fail as a journal whose commit (before the scan) failed.</summary>
        public bool FailReads { get; set; }

        public bool HasBlock(ulong blockNo, in Hash32 hash) => FailReads ? throw new JournalFaultException("simulated: the commit before the scan failed") : fixedHead is null ? _chain.HasBlock(blockNo, hash) : blockNo == fixedHead.Value.BlockNo && hash == fixedHead.Value.Hash;

        public void ReadBlocks(ulong afterBlockNo, ulong throughBlockNo, BlockVisitor visit)
        {
            if (FailReads)
            {
                throw new JournalFaultException("simulated: the commit before the scan failed");
            }
            _chain.ReadBlocks(afterBlockNo, throughBlockNo, visit);
        }

        public string? AppendReplicated(ReadOnlySpan<byte> block) => _chain.AppendReplicated(block);

        /// <summary>This node's state checksums, as its replica would keep them.</summary>
        public Dictionary<ulong, Hash32> Checksums { get; } = [];

        public Hash32? StateChecksumAfter(ulong blockNo) => Checksums.Remove(blockNo, out Hash32 checksum) ? checksum : null;

        public void DiscardDivergedChain()
        {
        }

        public CatchUpSnapshot? SnapshotFor(ulong backupHead) => _chain.SnapshotFor(backupHead);

        public string? InstallSnapshot(byte[] snapshot, ReadOnlySpan<byte> anchorBlock) => _chain.InstallSnapshot(snapshot, anchorBlock);
    }
}
