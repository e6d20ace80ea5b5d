using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Protocol;
using Engine.Replication.Pair;

namespace Engine.Tests.Pair;

/// <summary>The real <see cref="JournalPairLedger"/> on a <see cref="SimulatedJournal"/> in memory, for tests of the pair node without files.</summary>
internal static class SimulatedLedger
{
    public static JournalPairLedger Open(string name = "test") => Open(new SimulatedJournalDevice(name), null);

    /// <summary>A ledger on <paramref name="device"/> (reopened after a crash or a dispose), with snapshots every <paramref name="snapshotEvery"/> blocks on <paramref name="disk"/> (stepped by the caller), or none.</summary>
    /// <param name="device">The journal's device.</param>
    /// <param name="disk">Where its snapshots go; null: none.</param>
    /// <param name="snapshotEvery">Blocks between snapshots.</param>
    /// <param name="checksums">The state checksum's cadence.</param>
    /// <param name="keepHistory">What keeps the history after a snapshot is installed (<see cref="JournalPairLedger"/>'s); null: not kept.</param>
    public static JournalPairLedger Open(SimulatedJournalDevice device, Engine.Sim.SimSnapshotDisk? disk, ulong snapshotEvery = 100, ChecksumCadence checksums = default,
        Func<string, JournalAnchor, CancellationToken, string>? keepHistory = null)
    {
        int discarded = 0;
        string name = device.Name;
        var settings = new JournalSettings { Directory = "simulated", ClusterId = ClusterId.Development, Durability = Durability.Disk }.Validate();
        SnapshotSchedule? snapshots = disk is null ? null : new SnapshotSchedule(new SnapshotStore(disk, retain: 2), snapshotEvery, TimeSpan.Zero);
        return new JournalPairLedger((anchor, startBlock) => SimulatedJournal.Open(device, settings, anchor, startBlock), () =>
        {
            disk?.Clear();
            device = new SimulatedJournalDevice($"{name}.{++discarded}");
            return device.Name;
        }, name, checksums, _ => { }, snapshots, snapshotsOnOwnThread: false, keepHistory: keepHistory);
    }

    /// <summary>Seals one order after the ledger's head, in <paramref name="epoch"/>, and journals it as a primary's pipeline would; returns the block.</summary>
    public static byte[] SealOne(this JournalPairLedger ledger, ulong epoch = 1, long sealedAtNs = 0)
    {
        ulong seq = ledger.Head.BlockNo + 1;
        Transaction order = Transaction.NewOrder(1, seq, 2, 1, seq, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 1000, 1);
        var builder = new BlockBuilder(ledger.Head, 1) { Epoch = epoch };
        builder.Add(in order);
        byte[] block = builder.Seal(sealedAtNs, out _).ToArray();
        if (ledger.AppendReplicated(block) is { } refused)
        {
            throw new InvalidOperationException($"a block sealed on the ledger's own head does not chain: {refused}");
        }
        return block;
    }
}
