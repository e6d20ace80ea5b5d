using Engine.Client;
using Engine.Protocol;

namespace Engine.Tests.Client;

/// <summary>
/// The client's window of unanswered requests without sockets: numbering, answers in any order,
/// duplicates, an old request that holds the window, the resend order after a failover, and the
/// answer timeout that triggers one.
/// </summary>
public class PendingWindowTests
{
    private static Transaction Order() => Transaction.NewOrder(1, 0, 2, 1, 1, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 1000, 1);

    private static ulong Add(PendingWindow window, long now = 0, TaskCompletionSource<SubmitResult>? answer = null)
    {
        Transaction tx = Order();
        Assert.That(window.TryAdd(ref tx, answer, now), Is.True);
        return tx.ClientSeq;
    }

    [Test]
    public void Seqs_follow_the_logon_and_answers_in_any_order_free_their_slots()
    {
        var window = new PendingWindow(4);
        window.StartAfter(41);
        ulong[] seqs = [Add(window), Add(window), Add(window)];
        Assert.That(seqs, Is.EqualTo(new ulong[] { 42, 43, 44 }));
        Assert.That(window.InFlight, Is.EqualTo(3));

        Assert.That(window.TryComplete(43, out _), Is.True);
        Assert.That(window.OldestUnanswered, Is.EqualTo(42), "an answer out of order does not move the oldest");
        Assert.That(window.TryComplete(42, out _), Is.True);
        Assert.That(window.OldestUnanswered, Is.EqualTo(44), "past every answered one");
        Assert.That(window.InFlight, Is.EqualTo(1));
    }

    [Test]
    public void A_second_answer_and_an_answer_for_a_seq_never_sent_change_nothing()
    {
        var window = new PendingWindow(4);
        var answer = new TaskCompletionSource<SubmitResult>();
        ulong seq = Add(window, answer: answer);
        Assert.That(window.TryComplete(seq, out TaskCompletionSource<SubmitResult>? first), Is.True);
        Assert.That(first, Is.SameAs(answer));
        Assert.That(window.TryComplete(seq, out _), Is.False, "the resend's answer");
        Assert.That(window.TryComplete(seq + 4, out _), Is.False, "a seq of the same slot never sent");
        Assert.That(window.InFlight, Is.Zero);
    }

    [Test]
    public void An_old_unanswered_request_holds_its_slot_and_is_never_overwritten()
    {
        var window = new PendingWindow(4);
        ulong first = Add(window);
        for (int i = 0; i < 3; i++)
        {
            window.TryComplete(Add(window), out _);
        }
        Transaction fifth = Order();
        Assert.That(window.TryAdd(ref fifth, null, 0), Is.False, "seq 5 would take seq 1's slot while 1 is unanswered");
        Assert.That(window.LastSeq, Is.EqualTo(4), "and no seq was used up");
        Assert.That(window.TryResend(first, 0, out Transaction kept), Is.True);
        Assert.That(kept.ClientSeq, Is.EqualTo(first));

        window.TryComplete(first, out _);
        Assert.That(window.TryAdd(ref fifth, null, 0), Is.True);
        Assert.That(fifth.ClientSeq, Is.EqualTo(5UL));
    }

    [Test]
    public void A_failover_resends_the_unanswered_oldest_first_with_their_own_seqs()
    {
        var window = new PendingWindow(8);
        for (int i = 0; i < 6; i++)
        {
            Add(window);
        }
        window.TryComplete(2, out _);
        window.TryComplete(5, out _);

        var resent = new List<ulong>();
        for (ulong seq = window.OldestUnanswered; seq <= window.LastSeq; seq++)
        {
            if (window.TryResend(seq, 0, out Transaction tx))
            {
                resent.Add(tx.ClientSeq);
            }
        }
        Assert.That(resent, Is.EqualTo(new ulong[] { 1, 3, 4, 6 }));
    }

    [Test]
    public void The_oldest_request_overdue_triggers_one_failover_per_timeout()
    {
        var window = new PendingWindow(4);
        Add(window, now: 1_000);
        Add(window, now: 1_500);
        Assert.That(window.OldestOverdue(2_000, 2_000), Is.False);
        Assert.That(window.OldestOverdue(3_001, 2_000), Is.True);
        Assert.That(window.OldestOverdue(3_002, 2_000), Is.False, "its wait started again");
        window.TryComplete(1, out _);
        Assert.That(window.OldestOverdue(3_600, 2_000), Is.True, "the next oldest, sent at 1,500");
    }

    [Test]
    public void Clearing_fails_whatever_waits_and_numbering_goes_on()
    {
        var window = new PendingWindow(4);
        var answer = new TaskCompletionSource<SubmitResult>();
        Add(window, answer: answer);
        Add(window);
        Assert.That(window.Clear(), Is.EqualTo(new[] { answer }));
        Assert.That(window.InFlight, Is.Zero);
        Assert.That(Add(window), Is.EqualTo(3UL));
    }
}
