using CsCheck;
using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Tests.Fuzz;

/// <summary>
/// The sealer's clientSeq rule (<see cref="ClientSeqTable"/>): a seq in (highest sealed, base + window]
/// is sealed, one not above the highest sealed is a duplicate, one further ahead is rejected and
/// never journaled; each request moves the base by at most one window, so a client that lost count
/// gets back in, and no request makes a client's seqs jump.
/// </summary>
public class ClientSeqWindowTests
{
    private const ulong Window = ClientSeqTable.Window;

    [Test]
    public void The_attack_is_rejected_and_the_client_goes_on()
    {
        var table = new ClientSeqTable();
        Assert.Multiple(() =>
        {
            Assert.That(table.TryAdvance(1, 1), Is.EqualTo(ClientSeqVerdict.Next));
            Assert.That(table.TryAdvance(1, 0x8000_0000_0000_0001UL), Is.EqualTo(ClientSeqVerdict.TooFarAhead));
            Assert.That(table.TryAdvance(1, ulong.MaxValue), Is.EqualTo(ClientSeqVerdict.TooFarAhead));
            Assert.That(table.Highest(1), Is.EqualTo(1UL), "nothing far ahead was sealed");
            Assert.That(table.TryAdvance(1, 2), Is.EqualTo(ClientSeqVerdict.Next));
            Assert.That(table.TryAdvance(1, 1), Is.EqualTo(ClientSeqVerdict.Duplicate), "a resend is still a duplicate");
            Assert.That(table.TryAdvance(1, 2), Is.EqualTo(ClientSeqVerdict.Duplicate));
            Assert.That(table.TryAdvance(0, 1), Is.EqualTo(ClientSeqVerdict.BadClientId));
            Assert.That(table.TryAdvance(ProtocolLimits.MaxClientId + 1, 1), Is.EqualTo(ClientSeqVerdict.BadClientId));
            Assert.That(table.TryAdvance(uint.MaxValue, ulong.MaxValue), Is.EqualTo(ClientSeqVerdict.BadClientId));
            Assert.That(table.TryAdvance(ProtocolLimits.MaxClientId, 1), Is.EqualTo(ClientSeqVerdict.Next), "the largest id is tracked");
        });
    }

    [Test]
    public void The_window_ends_exactly_one_window_above_its_base()
    {
        var table = new ClientSeqTable();
        Assert.That(table.TryAdvance(7, 1 + Window + 1), Is.EqualTo(ClientSeqVerdict.TooFarAhead), "from nothing, the first seq may be at most the window");
        var fresh = new ClientSeqTable();
        Assert.That(fresh.TryAdvance(7, Window), Is.EqualTo(ClientSeqVerdict.Next));
        Assert.That(fresh.TryAdvance(7, 2 * Window + 1), Is.EqualTo(ClientSeqVerdict.TooFarAhead));
        Assert.That(fresh.TryAdvance(7, 3 * Window), Is.EqualTo(ClientSeqVerdict.Next), "the rejection moved the base by one window");
        Assert.That(fresh.WindowBase(7), Is.EqualTo(3 * Window));
    }

    [Test]
    public void Seqs_spent_before_the_ledger_move_the_window()
    {
        // A client whose requests were refused by validation (answered, never sealed) goes on numbering.
        var table = new ClientSeqTable();
        Assert.That(table.TryAdvance(3, 1), Is.EqualTo(ClientSeqVerdict.Next));
        for (ulong seq = 2; seq <= 5000; seq++)
        {
            table.NoteAnsweredBeforeLedger(3, seq);
        }
        Assert.That(table.TryAdvance(3, 5001), Is.EqualTo(ClientSeqVerdict.Next), "no rejection for an honest client");
        table.NoteAnsweredBeforeLedger(3, ulong.MaxValue);
        Assert.That(table.WindowBase(3), Is.EqualTo(5001 + Window), "a spent seq far ahead moves the base by one window only");
        Assert.That(table.TryAdvance(3, 40), Is.EqualTo(ClientSeqVerdict.Duplicate));
    }

    /// <summary>
    /// Seeding from a replayed state (a restart, a takeover) starts every window at the highest
    /// sealed. A client whose count ran ahead of the ledger (requests answered Busy or NoBackup by
    /// the node before) is rejected a bounded number of times and then sealed again, never stuck.
    /// </summary>
    [TestCase(1UL)]
    [TestCase(Window)]
    [TestCase(Window + 1)]
    [TestCase(50_000UL)]
    public void A_client_that_ran_ahead_of_the_ledger_is_back_after_a_bounded_number_of_rejections(ulong ahead)
    {
        var table = new ClientSeqTable();
        table.Seed([(9u, 100UL)]);
        Assert.That(table.TryAdvance(9, 100), Is.EqualTo(ClientSeqVerdict.Duplicate));
        ulong seq = 100 + ahead;
        int rejections = 0;
        while (table.TryAdvance(9, seq) == ClientSeqVerdict.TooFarAhead)
        {
            rejections++;
            seq++; // the rejection is a final answer: the client numbers on
            Assert.That(rejections, Is.LessThanOrEqualTo((int)(ahead / (Window - 1)) + 1), "bounded");
        }
        Assert.That(table.Highest(9), Is.EqualTo(seq));
        if (ahead <= Window)
        {
            Assert.That(rejections, Is.Zero, "within the window: no rejection");
        }
        else
        {
            Assert.That(rejections, Is.InRange(1, (int)(ahead / (Window - 1)) + 1));
        }
    }

    /// <summary>
    /// Any sequence of requests from a few clients (valid and impossible ids, seqs near, far and at
    /// the ends of the space, some answered before the ledger): never throws; a sealed seq is above
    /// the highest sealed and at most one window above the base; the base never falls and moves at
    /// most one window per request; the highest sealed never exceeds the base.
    /// </summary>
    [Test]
    public void Every_request_moves_a_client_by_at_most_one_window()
    {
        var genClient = Gen.Frequency((9, Gen.UInt[1, 3]), (1, Gen.OneOf(0u, ProtocolLimits.MaxClientId, ProtocolLimits.MaxClientId + 1, uint.MaxValue)));
        var genSeq = Gen.Frequency(
            (6, Gen.ULong[0, 3 * Window]),
            (2, Gen.ULong),
            (1, Gen.OneOf(0UL, 0x8000_0000_0000_0001UL, ulong.MaxValue - 1, ulong.MaxValue)));
        Gen.Select(genClient, genSeq, Gen.Bool).Array[1, 200].Sample(requests =>
        {
            var table = new ClientSeqTable();
            foreach (var (client, seq, answeredBefore) in requests)
            {
                ulong highest = table.Highest(client), windowBase = table.WindowBase(client);
                if (answeredBefore)
                {
                    table.NoteAnsweredBeforeLedger(client, seq);
                }
                else
                {
                    ClientSeqVerdict verdict = table.TryAdvance(client, seq);
                    bool tracked = client is >= 1 and <= ProtocolLimits.MaxClientId;
                    if (!tracked)
                    {
                        Check(verdict == ClientSeqVerdict.BadClientId, $"client {client}: {verdict}");
                        continue;
                    }
                    Check((verdict == ClientSeqVerdict.Duplicate) == (seq <= highest), $"{client}/{seq}: {verdict} with highest {highest}");
                    Check(verdict != ClientSeqVerdict.Next || (seq > highest && (seq <= windowBase || seq - windowBase <= Window)),
                        $"{client}/{seq} sealed with base {windowBase}");
                    Check(verdict != ClientSeqVerdict.Next || table.Highest(client) == seq, $"{client}/{seq} sealed but highest {table.Highest(client)}");
                    Check(verdict == ClientSeqVerdict.Next || table.Highest(client) == highest, $"{client}/{seq}: {verdict} moved the highest");
                }
                ulong after = table.WindowBase(client);
                Check(after >= windowBase && after - windowBase <= Window, $"{client}/{seq}: base {windowBase} → {after}");
                Check(table.Highest(client) <= after, $"{client}: highest {table.Highest(client)} above base {after}");
            }
        }, seed: FuzzRun.Seed, iter: FuzzRun.Iterations(300));
    }

    private static void Check(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException(what);
        }
    }
}
