using Engine.Core.Book;
using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Tests.Book;

public class ExchangeTests
{
    private Exchange _exchange = null!;
    private Outcomes _out = null!;
    private ulong _lsn;
    private readonly Dictionary<uint, ulong> _seq = [];

    private static ReferenceData Reference(int bandBps = 0, long referencePrice = 100) => new(
        new InstrumentTable([new Instrument(1, "ACME", 1) { ReferencePrice = referencePrice, PriceBandBps = bandBps }]),
        new Dictionary<uint, AccountLimits> { [1] = new(1000, 50_000, 3), [2] = new(1_000_000, 1_000_000_000, 1000) },
        [new ClientEntitlement(1, "a", [1, 2]), new ClientEntitlement(2, "b", [1, 2])],
        "test");

    [SetUp]
    public void SetUp()
    {
        _exchange = new Exchange(Reference());
        _out = new Outcomes();
        _lsn = 0;
        _seq.Clear();
    }

    private ulong NextSeq(uint client) => _seq[client] = _seq.GetValueOrDefault(client) + 1;

    private void Apply(Transaction tx)
    {
        var sink = new RecordingSink(_out);
        _exchange.Apply(in tx, ++_lsn, 1, default, ref sink);
        _exchange.AssertInvariants();
    }

    private void Limit(uint client, ulong id, Side side, long price, long qty, TimeInForce tif = TimeInForce.Gtc, uint account = 2) =>
        Apply(Transaction.NewOrder(client, NextSeq(client), account, 1, id, side, OrderType.Limit, tif, price, qty));

    private void Market(uint client, ulong id, Side side, long qty, TimeInForce tif = TimeInForce.Ioc) =>
        Apply(Transaction.NewOrder(client, NextSeq(client), 2, 1, id, side, OrderType.Market, tif, 0, qty));

    private RejectReason LastReply => _out.Replies[^1].Reason;

    private List<ExecutionReport> Trades => [.. _out.Reports.Where(r => r.TradeId != 0)];

    /// <summary>
    /// A market order's notional is its quantity at the reference price: a fat-finger market order of
    /// an account's largest quantity no longer passes the notional limit (before, market orders
    /// skipped it).
    /// </summary>
    [Test]
    public void A_market_order_is_checked_for_notional_at_the_reference_price()
    {
        Limit(2, 1, Side.Sell, 100, 1000, account: 2);
        // Account 1: at most 1,000 a order and 50,000 notional; 600 at the reference price 100 is 60,000.
        Apply(Transaction.NewOrder(1, NextSeq(1), 1, 1, 2, Side.Buy, OrderType.Market, TimeInForce.Ioc, 0, 600));
        Assert.That(LastReply, Is.EqualTo(RejectReason.RiskMaxNotional));
        Apply(Transaction.NewOrder(1, NextSeq(1), 1, 1, 3, Side.Buy, OrderType.Market, TimeInForce.Ioc, 0, 400));
        Assert.That(LastReply, Is.EqualTo(RejectReason.None), "40,000 is inside the limit");
        Assert.That(Trades.Last().LastQuantity, Is.EqualTo(400));
    }

    [Test]
    public void A_market_order_without_a_reference_price_is_refused_until_the_first_trade_sets_one()
    {
        _exchange = new Exchange(Reference(referencePrice: 0));
        Limit(2, 1, Side.Sell, 100, 10);
        Market(1, 2, Side.Buy, 1);
        Assert.That(LastReply, Is.EqualTo(RejectReason.NoReferencePrice));
        Limit(1, 3, Side.Buy, 100, 1);
        Assert.That(Trades, Has.Count.EqualTo(2), "a limit order trades and sets the reference price");
        Market(1, 4, Side.Buy, 1);
        Assert.That(LastReply, Is.EqualTo(RejectReason.None));
    }

    [Test]
    public void A_limit_price_outside_the_band_is_refused_and_the_band_follows_the_last_trade()
    {
        _exchange = new Exchange(Reference(bandBps: 1000)); // 10% of the reference price
        Limit(1, 1, Side.Buy, 111, 1);
        Assert.That(LastReply, Is.EqualTo(RejectReason.PriceOutsideBand), "11% above 100");
        Limit(1, 2, Side.Buy, 110, 1);
        Assert.That(LastReply, Is.EqualTo(RejectReason.None), "10% is inside");
        Limit(1, 3, Side.Sell, 89, 1);
        Assert.That(LastReply, Is.EqualTo(RejectReason.PriceOutsideBand));
        Limit(2, 4, Side.Sell, 110, 1); // trades at 110: the reference price moves there
        Limit(1, 5, Side.Buy, 120, 1);
        Assert.That(LastReply, Is.EqualTo(RejectReason.None), "inside 10% of the last trade (110)");
        Apply(Transaction.Replace(1, NextSeq(1), 2, 1, 6, 5, 125, 1));
        Assert.That(LastReply, Is.EqualTo(RejectReason.PriceOutsideBand), "a replace is banded too");
    }

    [Test]
    public void A_market_order_trades_only_inside_the_band_and_the_rest_is_cancelled()
    {
        // A sell outside today's band (it rested under a wider one): built with a 50% band, narrowed
        // to 10% by an admin transaction.
        _exchange = new Exchange(Reference(bandBps: 5000));
        Limit(2, 1, Side.Sell, 105, 5);
        Limit(2, 2, Side.Sell, 110, 5);
        Limit(2, 99, Side.Sell, 120, 5);
        Apply(AdminTransaction.DefineInstrument(1, "ACME", 1, referencePrice: 100, priceBandBps: 1000));
        Assert.That(LastReply, Is.EqualTo(RejectReason.None));

        Market(1, 3, Side.Buy, 20);

        Assert.That(LastReply, Is.EqualTo(RejectReason.None));
        Assert.That(Trades.Where(t => t.ClientId == 1).Sum(t => t.LastQuantity), Is.EqualTo(10), "105 and 110 are inside 10% of 100; 120 is not");
        Assert.That(_out.Reports.Last().ExecType, Is.EqualTo(ExecType.Cancelled), "the rest of the market order");
        Assert.That(_exchange.TryGetOrder(2, 99, out long leaves, out _, out _), Is.True, "the far order rests");
        Assert.That(leaves, Is.EqualTo(5), "untouched");
    }

    [Test]
    public void A_crossing_order_trades_at_the_resting_price_and_reports_both_sides()
    {
        Limit(1, 10, Side.Buy, 100, 10);
        Limit(2, 20, Side.Sell, 99, 4);
        Assert.That(Trades, Has.Count.EqualTo(2));
        ExecutionReport maker = Trades[0], taker = Trades[1];
        Assert.Multiple(() =>
        {
            Assert.That(maker.ClientId, Is.EqualTo(1));
            Assert.That(maker.ExecType, Is.EqualTo(ExecType.PartialFill));
            Assert.That(maker.LeavesQuantity, Is.EqualTo(6));
            Assert.That(taker.ClientId, Is.EqualTo(2));
            Assert.That(taker.ExecType, Is.EqualTo(ExecType.Fill));
            Assert.That(maker.TradeId, Is.EqualTo(taker.TradeId));
            Assert.That(maker.LastPrice, Is.EqualTo(100), "the maker's price");
            Assert.That(taker.LastQuantity, Is.EqualTo(4));
            Assert.That(_exchange.TryGetOrder(1, 10, out long leaves, out long cum, out _), Is.True);
            Assert.That((leaves, cum), Is.EqualTo((6L, 4L)));
        });
    }

    [Test]
    public void Better_prices_first_then_older_orders_first()
    {
        Limit(1, 1, Side.Buy, 100, 5);   // A
        Limit(1, 2, Side.Buy, 100, 5);   // B, same price, later
        Limit(2, 3, Side.Buy, 101, 5);   // C, better price
        Limit(2, 4, Side.Sell, 100, 12);
        ulong[] makers = [.. Trades.Where(r => r.Side == Side.Buy).Select(r => r.ClientOrderId)];
        Assert.That(makers, Is.EqualTo(new ulong[] { 3, 1, 2 }));
        Assert.That(Trades.Where(r => r.Side == Side.Buy).Select(r => r.LastPrice), Is.EqualTo(new long[] { 101, 100, 100 }));
        Assert.That(_exchange.TryGetOrder(1, 2, out long leaves, out _, out _), Is.True);
        Assert.That(leaves, Is.EqualTo(3));
    }

    [Test]
    public void IOC_cancels_its_remainder_and_FOK_fills_whole_or_not_at_all()
    {
        Limit(1, 1, Side.Sell, 100, 5);
        Limit(2, 2, Side.Buy, 100, 8, TimeInForce.Ioc);
        Assert.That(_out.Reports[^1].ExecType, Is.EqualTo(ExecType.Cancelled));
        Assert.That(_out.Reports[^1].CumQuantity, Is.EqualTo(5));
        Assert.That(_exchange.TryGetOrder(2, 2, out _, out _, out _), Is.False, "an IOC never rests");

        Limit(1, 3, Side.Sell, 101, 5);
        int trades = Trades.Count;
        Limit(2, 4, Side.Buy, 101, 6, TimeInForce.Fok);
        Assert.That(Trades, Has.Count.EqualTo(trades), "a FOK that cannot fill in full does not trade at all");
        Assert.That(_out.Reports[^1].ExecType, Is.EqualTo(ExecType.Cancelled));
        Limit(2, 5, Side.Buy, 101, 5, TimeInForce.Fok);
        Assert.That(_out.Reports[^1].ExecType, Is.EqualTo(ExecType.Fill));
    }

    [Test]
    public void A_market_order_sweeps_levels_and_cancels_what_is_left()
    {
        Limit(1, 1, Side.Sell, 100, 2);
        Limit(1, 2, Side.Sell, 105, 2);
        Market(2, 3, Side.Buy, 10);
        Assert.That(Trades.Where(t => t.ClientId == 2).Select(t => t.LastPrice), Is.EqualTo(new long[] { 100, 105 }));
        Assert.That(_out.Reports[^1].ExecType, Is.EqualTo(ExecType.Cancelled));
        Assert.That(_exchange.OpenOrders, Is.Zero);
    }

    [Test]
    public void Cancel_takes_only_ones_own_live_order()
    {
        Limit(1, 1, Side.Buy, 100, 5);
        Apply(Transaction.Cancel(2, NextSeq(2), 2, 1, 9, 1));
        Assert.That(LastReply, Is.EqualTo(RejectReason.UnknownOrder), "client 2 cannot cancel client 1's order");
        Assert.That(_out.Replies[^1].Lsn, Is.EqualTo(_lsn), "a logged rejection names its LSN");
        Apply(Transaction.Cancel(1, NextSeq(1), 2, 1, 9, 1));
        Assert.That(LastReply, Is.EqualTo(RejectReason.None));
        Assert.That(_out.Reports[^1].ExecType, Is.EqualTo(ExecType.Cancelled));
        Assert.That(_exchange.OpenOrders, Is.Zero);
        Apply(Transaction.Cancel(1, NextSeq(1), 2, 1, 10, 1));
        Assert.That(LastReply, Is.EqualTo(RejectReason.UnknownOrder), "already gone");
    }

    [Test]
    public void Replace_keeps_priority_only_when_price_stays_and_quantity_does_not_grow()
    {
        Limit(1, 1, Side.Buy, 100, 5);
        Limit(1, 2, Side.Buy, 100, 5);
        Apply(Transaction.Replace(1, NextSeq(1), 2, 1, 11, 1, 100, 4)); // smaller: keeps its place
        Assert.That(_out.Reports[^1].ExecType, Is.EqualTo(ExecType.Replaced));
        Limit(2, 3, Side.Sell, 100, 1);
        Assert.That(Trades.First(t => t.ClientId == 1).ClientOrderId, Is.EqualTo(11), "still first in the queue");

        Apply(Transaction.Replace(1, NextSeq(1), 2, 1, 12, 11, 100, 9)); // larger: to the back
        Limit(2, 4, Side.Sell, 100, 1);
        Assert.That(Trades.Last(t => t.ClientId == 1).ClientOrderId, Is.EqualTo(2), "the other order is now first");

        Apply(Transaction.Replace(1, NextSeq(1), 2, 1, 13, 2, 100, 1)); // total 1 but 1 already filled
        Assert.That(LastReply, Is.EqualTo(RejectReason.ReplaceQuantityTooLow));
    }

    [Test]
    public void A_replace_to_a_crossing_price_trades()
    {
        Limit(1, 1, Side.Sell, 105, 5);
        Limit(2, 2, Side.Buy, 100, 5);
        Apply(Transaction.Replace(2, NextSeq(2), 2, 1, 3, 2, 105, 5));
        Assert.That(Trades.Last().ClientOrderId, Is.EqualTo(3));
        Assert.That(Trades.Last().ExecType, Is.EqualTo(ExecType.Fill));
        Assert.That(_exchange.OpenOrders, Is.Zero);
    }

    [Test]
    public void Risk_limits_reject_with_their_own_reasons()
    {
        Limit(1, 1, Side.Buy, 10, 1001, account: 1);
        Assert.That(LastReply, Is.EqualTo(RejectReason.RiskMaxQuantity));
        Limit(1, 2, Side.Buy, 100, 600, account: 1);
        Assert.That(LastReply, Is.EqualTo(RejectReason.RiskMaxNotional));
        for (ulong id = 3; id < 6; id++)
        {
            Limit(1, id, Side.Buy, 10, 1, account: 1);
            Assert.That(LastReply, Is.EqualTo(RejectReason.None));
        }
        Limit(1, 6, Side.Buy, 10, 1, account: 1);
        Assert.That(LastReply, Is.EqualTo(RejectReason.RiskMaxOpenOrders));
        Limit(1, 7, Side.Buy, 10, 1, TimeInForce.Ioc, account: 1);
        Assert.That(LastReply, Is.EqualTo(RejectReason.None), "an IOC never rests, so the open-order limit does not apply");
        Limit(1, 3, Side.Buy, 10, 1, account: 2);
        Assert.That(LastReply, Is.EqualTo(RejectReason.DuplicateOrderId));
    }

    [Test]
    public void A_duplicate_gets_the_original_outcome_and_changes_nothing()
    {
        var order = Transaction.NewOrder(1, 1, 2, 1, 1, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 5);
        Apply(order);
        var bad = Transaction.Cancel(1, 2, 2, 1, 2, 77);
        Apply(bad);
        Hash32 before = _exchange.ComputeChecksum();
        int reports = _out.Reports.Count;

        var sink = new RecordingSink(_out);
        _exchange.Apply(in order, 99, 9, default, ref sink);
        _exchange.Apply(in bad, 100, 9, default, ref sink);
        Assert.Multiple(() =>
        {
            Assert.That(_out.Replies[^2], Is.EqualTo((1UL, RejectReason.None, 1UL)), "the original receipt's LSN");
            Assert.That(_out.Replies[^1], Is.EqualTo((2UL, RejectReason.UnknownOrder, 2UL)), "the original rejection");
            Assert.That(_out.Reports, Has.Count.EqualTo(reports), "no second execution");
            Assert.That(_exchange.OpenOrders, Is.EqualTo(1));
        });
        Assert.That(_exchange.ComputeChecksum(), Is.Not.EqualTo(before), "only the last LSN moved");
        Assert.That(_exchange.TryGetOutcome(1, 2, out Outcome outcome), Is.True);
        Assert.That(outcome.Reason, Is.EqualTo(RejectReason.UnknownOrder));
    }

    /// <summary>
    /// Issue 10's poison: clientSeq 1 then 2^63+1 from one client. The dedupe window's growth
    /// rounded the span up to a power of two, which wraps to 0 above 2^63, and Apply threw after the
    /// block was journaled: both nodes halted, and again at every restart. Fails on the code before.
    /// </summary>
    [TestCase(0x8000_0000_0000_0001UL)]
    [TestCase(ulong.MaxValue)]
    [TestCase(ulong.MaxValue - 1)]
    [TestCase(1UL + Exchange.DedupeWindow)]
    [TestCase(2UL + Exchange.DedupeWindow)]
    public void A_clientSeq_jump_of_any_size_is_applied_and_the_window_stays_sane(ulong jump)
    {
        Apply(Transaction.NewOrder(1, 1, 2, 1, 1, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 5));
        Apply(Transaction.NewOrder(1, jump, 2, 1, 2, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 5));
        Assert.That(_out.Replies[^1], Is.EqualTo((jump, RejectReason.None, 2UL)), "journaled, so applied: it is the ledger's outcome");
        Assert.That(_exchange.LastClientSeq(1), Is.EqualTo(jump));

        // Duplicates still answer with their outcomes; the skipped seqs were never executed.
        var sink = new RecordingSink(_out);
        var resend = Transaction.NewOrder(1, jump, 2, 1, 2, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 5);
        _exchange.Apply(in resend, ++_lsn, 1, default, ref sink);
        Assert.That(_out.Replies[^1], Is.EqualTo((jump, RejectReason.None, 2UL)));
        var skipped = Transaction.NewOrder(1, jump - 1, 2, 1, 3, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 5);
        _exchange.Apply(in skipped, ++_lsn, 1, default, ref sink);
        Assert.That(_out.Replies[^1].Reason, Is.EqualTo(RejectReason.StaleClientSeq));
        _exchange.AssertInvariants();
        Assert.That(_exchange.OpenOrders, Is.EqualTo(2));
        if (jump != ulong.MaxValue)
        {
            // And the client goes on from there.
            Apply(Transaction.Cancel(1, jump + 1, 2, 1, 9, 2));
            Assert.That(LastReply, Is.EqualTo(RejectReason.None));
        }
    }

    /// <summary>
    /// What validation refuses can still be in a journal (an older version's, a hand-made block):
    /// the book runs the same checks and answers with the same reasons, never throws, and keeps
    /// nothing under a key that is not one.
    /// </summary>
    [Test]
    public void A_transaction_that_never_passed_validation_gets_a_rejection_not_an_exception()
    {
        Transaction good = Transaction.NewOrder(1, 0, 2, 1, 1, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 5);
        (Transaction Tx, RejectReason Reason)[] poison =
        [
            (good with { ClientSeq = 0 }, RejectReason.BadClientSeq),
            (good with { ClientId = 0 }, RejectReason.BadClientId),
            (good with { ClientId = ProtocolLimits.MaxClientId + 1 }, RejectReason.BadClientId),
            (good with { Kind = (MessageType)77 }, RejectReason.UnknownMessageType),
            (good with { Side = (Side)9 }, RejectReason.BadSide),
            (good with { Type = 0 }, RejectReason.BadOrderType),
            (good with { TimeInForce = (TimeInForce)200 }, RejectReason.BadTimeInForce),
            (good with { Quantity = -1 }, RejectReason.QuantityOutOfRange),
            (good with { Quantity = long.MinValue }, RejectReason.QuantityOutOfRange),
            (good with { Quantity = 0 }, RejectReason.ZeroQuantity),
            (good with { Price = long.MaxValue }, RejectReason.PriceOutOfRange),
            (good with { Price = -100 }, RejectReason.PriceOutOfRange),
            (good with { Type = OrderType.Market, TimeInForce = TimeInForce.Ioc }, RejectReason.MarketOrderHasPrice),
            (good with { Instrument = uint.MaxValue }, RejectReason.UnknownInstrument),
            (good with { Account = uint.MaxValue }, RejectReason.AccountNotAllowed),
            (Transaction.Replace(1, 0, 2, 1, 5, 5, 100, 5), RejectReason.SameOrderId),
            (Transaction.Replace(1, 0, 2, 1, 6, 5, 100, long.MaxValue), RejectReason.QuantityOutOfRange),
        ];
        foreach (var (tx, reason) in poison)
        {
            Transaction numbered = tx.ClientSeq == 0 && reason != RejectReason.BadClientSeq ? tx with { ClientSeq = NextSeq(tx.ClientId) } : tx;
            Assert.DoesNotThrow(() => Apply(numbered), $"{numbered}");
            Assert.That(LastReply, Is.EqualTo(reason), $"{numbered}");
        }
        Assert.Multiple(() =>
        {
            Assert.That(_exchange.OpenOrders, Is.Zero);
            Assert.That(_exchange.ClientSeqs.Select(c => c.ClientId), Is.EqualTo(new uint[] { 1 }), "no state kept for client ids no client can have");
            Assert.That(_exchange.TryGetOutcome(1, 0, out _), Is.False, "seq 0 is never an outcome");
        });
    }

    [Test]
    public void A_halted_instrument_refuses_new_orders_and_replaces_with_their_own_reason_and_takes_cancels()
    {
        Limit(1, 1, Side.Buy, 99, 5);
        Apply(AdminTransaction.HaltInstrument(1));
        Assert.That(LastReply, Is.EqualTo(RejectReason.None), "the halt itself");

        Limit(2, 2, Side.Sell, 101, 5);
        Assert.That(LastReply, Is.EqualTo(RejectReason.InstrumentHalted));
        Apply(Transaction.Replace(1, NextSeq(1), 2, 1, 3, 1, 98, 5));
        Assert.That(LastReply, Is.EqualTo(RejectReason.InstrumentHalted));
        Apply(Transaction.Cancel(1, NextSeq(1), 2, 1, 4, 1));
        Assert.That(LastReply, Is.EqualTo(RejectReason.None), "cancels pass a halt");

        Apply(AdminTransaction.ResumeInstrument(1));
        Limit(2, 5, Side.Sell, 101, 5);
        Assert.That(LastReply, Is.EqualTo(RejectReason.None), "trading resumed");
        Assert.That(_exchange.Reference.Instruments.Find(1)!.Halted, Is.False);
    }

    [Test]
    public void Cancel_all_of_a_client_cancels_its_orders_on_every_book_and_no_one_elses()
    {
        _exchange = new Exchange(new ReferenceData(
            new InstrumentTable([new Instrument(1, "ACME", 1) { ReferencePrice = 100 }, new Instrument(7, "SEVEN", 1) { ReferencePrice = 100 }]),
            new Dictionary<uint, AccountLimits> { [2] = new(1_000_000, 1_000_000_000, 1000) },
            [new ClientEntitlement(1, "a", [2]), new ClientEntitlement(2, "b", [2])], "test"));
        Limit(1, 1, Side.Buy, 99, 5);
        Limit(2, 2, Side.Buy, 98, 5);
        Apply(Transaction.NewOrder(1, NextSeq(1), 2, 7, 3, Side.Sell, OrderType.Limit, TimeInForce.Gtc, 120, 5));
        int reports = _out.Reports.Count;

        Apply(AdminTransaction.CancelAllOfClient(1));

        List<ExecutionReport> cancels = _out.Reports.Skip(reports).ToList();
        Assert.That(cancels.Select(r => (r.ClientId, r.ClientOrderId, r.ExecType, r.ClientSeq)),
            Is.EqualTo(new[] { (1u, 1UL, ExecType.Cancelled, 0UL), (1u, 3UL, ExecType.Cancelled, 0UL) }), "both books, by instrument; clientSeq 0: no request of the client's");
        Assert.That(_exchange.TryGetOrder(1, 1, out _, out _, out _) || _exchange.TryGetOrder(1, 3, out _, out _, out _), Is.False);
        Assert.That(_exchange.TryGetOrder(2, 2, out _, out _, out _), Is.True, "another client's order rests");

        Apply(AdminTransaction.CancelAllOnInstrument(1));
        Assert.That(_exchange.OpenOrders, Is.Zero);
        Apply(AdminTransaction.CancelAllOnInstrument(3));
        Assert.That(LastReply, Is.EqualTo(RejectReason.UnknownInstrument));
    }

    [Test]
    public void A_disabled_client_may_only_cancel_and_a_new_client_trades_only_the_accounts_granted()
    {
        Limit(1, 1, Side.Buy, 99, 5);
        Apply(AdminTransaction.DisableClient(1));
        Limit(1, 2, Side.Buy, 98, 5);
        Assert.That(LastReply, Is.EqualTo(RejectReason.ClientDisabled));
        Apply(Transaction.Cancel(1, NextSeq(1), 2, 1, 3, 1));
        Assert.That(LastReply, Is.EqualTo(RejectReason.None));

        Apply(AdminTransaction.DisableClient(9));
        Assert.That(LastReply, Is.EqualTo(RejectReason.UnknownClient));
        Apply(AdminTransaction.EnableClient(9));
        Limit(9, 1, Side.Buy, 97, 5, account: 2);
        Assert.That(LastReply, Is.EqualTo(RejectReason.AccountNotAllowed), "enabled, no account yet");
        Apply(AdminTransaction.GrantAccounts(9, 2, 2));
        Limit(9, 2, Side.Buy, 97, 5, account: 2);
        Assert.That(LastReply, Is.EqualTo(RejectReason.None));
        Limit(9, 3, Side.Buy, 97, 5, account: 1);
        Assert.That(LastReply, Is.EqualTo(RejectReason.AccountNotAllowed), "account 1 was not granted");
    }

    [Test]
    public void New_instruments_and_limits_take_effect_at_their_place_in_the_log()
    {
        Apply(Transaction.NewOrder(1, NextSeq(1), 2, 5, 1, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 10, 5));
        Assert.That(LastReply, Is.EqualTo(RejectReason.UnknownInstrument));
        Apply(AdminTransaction.DefineInstrument(5, "NEW", 10, referencePrice: 1000));
        Apply(Transaction.NewOrder(1, NextSeq(1), 2, 5, 2, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 15, 5));
        Assert.That(LastReply, Is.EqualTo(RejectReason.PriceNotOnTick), "the new instrument's tick");
        Apply(Transaction.NewOrder(1, NextSeq(1), 2, 5, 3, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 20, 5));
        Assert.That(LastReply, Is.EqualTo(RejectReason.None));

        Apply(AdminTransaction.SetAccountLimits(2, maxOrderQuantity: 4, maxOrderNotional: 1_000_000, maxOpenOrders: 10));
        Limit(1, 4, Side.Buy, 99, 5);
        Assert.That(LastReply, Is.EqualTo(RejectReason.RiskMaxQuantity), "the new limit");
        Apply(AdminTransaction.SetAccountLimits(2, maxOrderQuantity: 0, maxOrderNotional: 0, maxOpenOrders: int.MaxValue) with { ClientSeq = 1 });
        Assert.That(LastReply, Is.EqualTo(RejectReason.BadReferenceData), "an admin transaction with a field it does not use set");
    }

    [Test]
    public void The_reference_data_is_in_the_state_checksum_and_the_snapshot()
    {
        Hash32 before = _exchange.ComputeChecksum();
        Apply(AdminTransaction.HaltInstrument(1));
        Hash32 halted = _exchange.ComputeChecksum();
        Assert.That(halted, Is.Not.EqualTo(before), "a halt changes the state");
        Apply(AdminTransaction.GrantAccounts(1, 5, 9));
        Assert.That(_exchange.ComputeChecksum(), Is.Not.EqualTo(halted), "so does a grant");

        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        _exchange.WriteSnapshot(buffer, 1, default);
        Exchange loaded = Exchange.ReadSnapshot(buffer.WrittenSpan, out _);
        Assert.That(loaded.ComputeChecksum(), Is.EqualTo(_exchange.ComputeChecksum()));
        Assert.That(loaded.Reference.Instruments.Find(1)!.Halted, Is.True);
        Assert.That(loaded.Reference.Clients[1].Accounts, Is.EqualTo(new[] { new AccountRange(1, 2), new AccountRange(5, 9) }));
    }
}
