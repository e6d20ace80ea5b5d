using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Replication.Pair;
using Engine.Tests.Pair;

namespace Engine.Tests.Journaling;

/// <summary>
/// The pair's state checksum is due by block count and by the blocks' own timestamps: every node that
/// applies the same chain picks the same blocks, at any rate, and at moderate rates (a block an
/// order) the walk runs once a window, not once every N blocks.
/// </summary>
public class ChecksumCadenceTests
{
    private const long Second = 1_000_000_000;

    [Test]
    public void By_time_the_first_block_of_each_window_is_due_whatever_the_rate()
    {
        var cadence = new ChecksumCadence(EveryBlocks: 1_000_000, EveryNs: 5 * Second);
        var schedule = new ChecksumSchedule(cadence);
        // 10,000 blocks a second (one order each) for 20 s, from t = 100 s.
        var due = new List<ulong>();
        for (ulong block = 1; block <= 200_000; block++)
        {
            long sealedAt = (100 * Second) + ((long)block * Second / 10_000);
            if (schedule.After(block, sealedAt))
            {
                due.Add(block);
            }
        }
        Assert.That(due, Is.EqualTo(new ulong[] { 50_000, 100_000, 150_000, 200_000 }), "once every 5 s, where every 10,000 blocks was every second");
    }

    [Test]
    public void Two_appliers_of_the_same_chain_pick_the_same_blocks_and_one_that_just_started_picks_none_it_cannot_judge()
    {
        var cadence = new ChecksumCadence(EveryBlocks: 64, EveryNs: Second);
        var random = new Random(7);
        var timestamps = new long[2_000];
        long now = 50 * Second;
        for (int i = 1; i < timestamps.Length; i++)
        {
            now += random.Next(1, 200_000_000); // irregular gaps: idle moments and bursts
            timestamps[i] = now;
        }
        List<ulong> Due(ChecksumSchedule schedule, int from) =>
            [.. Enumerable.Range(from, timestamps.Length - from).Where(b => schedule.After((ulong)b, timestamps[b])).Select(b => (ulong)b)];

        List<ulong> primary = Due(new ChecksumSchedule(cadence), 1);
        List<ulong> backup = Due(new ChecksumSchedule(cadence), 1);
        List<ulong> restarted = Due(new ChecksumSchedule(cadence), 1_000);
        Assert.Multiple(() =>
        {
            Assert.That(backup, Is.EqualTo(primary));
            Assert.That(primary.Where(b => b % 64 != 0), Is.Not.Empty, "some by time");
            Assert.That(restarted, Is.EqualTo(primary.Where(b => b > 1_000)), "after its first block (not judged by time: the one before it is unknown), the same blocks");
        });
    }

    [Test]
    public void Never_is_never_and_genesis_never_is()
    {
        var never = new ChecksumSchedule(ChecksumCadence.Never);
        Assert.That(Enumerable.Range(1, 100).Any(b => never.After((ulong)b, b * Second)), Is.False);
        Assert.That(new ChecksumCadence(1, Second).IsDue(0, 10 * Second, 1), Is.False);
        Assert.That(new ChecksumCadence(0, Second).IsDue(1, 10 * Second, 0), Is.False, "genesis has no timestamp: the first block is not judged by time");
    }

    [Test]
    public void A_backup_keeps_its_checksum_after_exactly_the_blocks_its_primary_sends_one_for()
    {
        var cadence = new ChecksumCadence(EveryBlocks: 0, EveryNs: Second);
        JournalPairLedger backup = SimulatedLedger.Open(new SimulatedJournalDevice("backup"), disk: null, checksums: cadence);
        var primary = new ChecksumSchedule(cadence);
        var sentFor = new List<ulong>();
        long now = 10 * Second;
        for (int i = 0; i < 60; i++)
        {
            now += 150_000_000; // a block every 150 ms
            backup.SealOne(sealedAtNs: now);
            if (primary.After(backup.Head.BlockNo, now))
            {
                sentFor.Add(backup.Head.BlockNo);
            }
        }
        Assert.That(sentFor, Has.Count.InRange(8, 10), "about one a second over 9 s");
        Assert.That(Enumerable.Range(1, 60).Where(b => backup.StateChecksumAfter((ulong)b) is not null).Select(b => (ulong)b), Is.EqualTo(sentFor));
    }
}
