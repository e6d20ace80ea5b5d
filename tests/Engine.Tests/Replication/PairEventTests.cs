using Engine.Cli;
using Engine.Replication;

namespace Engine.Tests.Replication;

/// <summary>Pair events: what programs decide on is the kind, named the same way on the wire (<c>GET /log</c>) and back.</summary>
public class PairEventTests
{
    [Test]
    public void Every_kind_has_its_own_snake_case_name_and_reads_back_as_itself()
    {
        PairEventKind[] kinds = Enum.GetValues<PairEventKind>();
        string[] names = kinds.Select(PairEvent.Name).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(names, Is.Unique);
            Assert.That(names, Has.All.Matches("^[a-z]+(_[a-z]+)*$"));
            foreach (PairEventKind kind in kinds)
            {
                Assert.That(PairEvent.TryParse(PairEvent.Name(kind), out PairEventKind back), Is.True, kind.ToString());
                Assert.That(back, Is.EqualTo(kind));
            }
        });
        Assert.That(PairEvent.Name(PairEventKind.TakeOver), Is.EqualTo("take_over"));
    }

    [TestCase(null)]
    [TestCase("")]
    [TestCase("TakeOver")]
    [TestCase("take over")]
    [TestCase("take_over ")]
    [TestCase("3")]
    public void A_name_that_is_no_kind_is_refused(string? name)
    {
        Assert.That(PairEvent.TryParse(name, out _), Is.False);
    }

    [Test]
    public void The_recent_log_keeps_the_newest_events_numbered_and_typed()
    {
        var log = new RecentLog(4);
        for (ulong i = 1; i <= 6; i++)
        {
            log.Add(new PairEvent(i % 2 == 0 ? PairEventKind.BackupInStep : PairEventKind.BackupLost, $"event {i}", Epoch: 7, BlockNo: i));
        }
        (List<(long Seq, long AtMs, PairEvent Event)> lines, long next) = log.After(0);
        Assert.Multiple(() =>
        {
            Assert.That(next, Is.EqualTo(7));
            Assert.That(lines.Select(l => l.Seq), Is.EqualTo(new long[] { 3, 4, 5, 6 }), "the two oldest are overwritten");
            Assert.That(lines.Select(l => l.Event.BlockNo), Is.EqualTo(new ulong[] { 3, 4, 5, 6 }));
            Assert.That(lines[1].Event.Kind, Is.EqualTo(PairEventKind.BackupInStep));
            Assert.That(log.After(5).Lines.Select(l => l.Seq), Is.EqualTo(new long[] { 6 }));
        });
    }
}
