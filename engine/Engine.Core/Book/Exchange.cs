using System.Buffers.Binary;
using System.Security.Cryptography;
using Engine.Protocol;

namespace Engine.Core.Book;

/// <summary>
/// The state machine: a price-time-priority limit order book per instrument, per-account risk
/// limits and open-order counts, and per-client idempotency (the last clientSeq applied and the
/// outcomes of the last <see cref="DedupeWindow"/> requests).
/// </summary>
/// <remarks>
/// <para>Deterministic: the only inputs are the transactions and their LSN and block; no clock, no
/// randomness, and nothing iterates a hash table (clients are walked in first-seen order, accounts
/// and instruments by id). Same log in, same state out, and the same <see cref="ComputeChecksum"/>.</para>
/// <para>Single-threaded: the apply stage owns it.</para>
/// <para>Matching: a taker trades with the best opposite level while it crosses, oldest order first
/// at each level; every fill reports to both sides with one trade id. A GTC limit remainder rests;
/// an IOC, FOK or market remainder is cancelled. A FOK that cannot fill in full is cancelled whole
/// before it trades. A replace keeps its place only if the price stays and the quantity does not
/// grow; otherwise it goes to the back of its (new) level, and may trade if it now crosses.</para>
/// <para>Total: <see cref="Apply"/> gives every transaction an outcome and throws on none, whatever
/// its fields, also one that never passed validation (a hand-made block, an older version's
/// journal): a poison transaction in the journal would otherwise stop both nodes of a pair, and
/// again at every restart. By construction, not by catching: the stateless checks of the codec run
/// again first (<see cref="TransactionCodec.Check"/>, the instrument and its tick), so prices and
/// quantities that reach the book are bounded (notional in <see cref="Int128"/>, level totals far
/// inside a long), and the dedupe window's growth saturates for any clientSeq.</para>
/// </remarks>
public sealed partial class Exchange
{
    /// <summary>
    /// Outcomes kept per client for duplicates: as many as any client can have in flight, and the
    /// furthest a clientSeq may be ahead of its client's window (<see cref="ProtocolLimits.ClientSeqWindow"/>).
    /// </summary>
    public const int DedupeWindow = (int)ProtocolLimits.ClientSeqWindow;

    private OrderBook?[] _books = new OrderBook?[1];
    private readonly OrderStore _orders = new();
    private readonly Dictionary<OrderKey, int> _byKey = [];
    private readonly Dictionary<uint, AccountState> _accounts = [];
    private readonly Dictionary<uint, ClientState> _clients = [];
    private readonly List<ClientState> _clientsInOrder = [];
    private ulong _nextTradeId = 1;

    // The block of the transaction being applied, for its receipt.
    private (ulong No, Hash32 Hash) _block;

    /// <summary>
    /// An empty state machine: no instruments, accounts or clients until admin transactions define
    /// them. What a node starts from: its reference data comes from the ledger, never from its
    /// configuration (which only the first primary of a new ledger journals, see <see cref="ReferenceData.AdminTransactions"/>).
    /// </summary>
    public Exchange()
    {
    }

    /// <summary>
    /// A state machine that starts with <paramref name="reference"/> as if its admin transactions
    /// (<see cref="ReferenceData.AdminTransactions"/>) had been applied before the first LSN: for
    /// tests and tools that apply orders to a book of known instruments; a node starts empty.
    /// </summary>
    public Exchange(ReferenceData reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        var none = new NoReports();
        HoldPublishing();
        foreach (Transaction admin in reference.AdminTransactions())
        {
            RejectReason refused = ApplyAdmin(in admin, 0, ref none);
            if (refused != RejectReason.None)
            {
                throw new ArgumentException($"{reference}: {AdminTransaction.Describe(in admin)} is refused: {refused}");
            }
        }
        ReleasePublishing();
    }

    /// <summary>The LSN of the last transaction applied (0 before any).</summary>
    public ulong LastLsn { get; private set; }

    public ulong TradeCount => _nextTradeId - 1;

    public int OpenOrders => _orders.Live;

    /// <summary>Every resting order, in no particular order: what an observer that starts from a snapshot writes as the open orders.</summary>
    public IEnumerable<RestingOrder> RestingOrders()
    {
        foreach (int index in _byKey.Values)
        {
            Order order = _orders[index];
            yield return new RestingOrder(order.ClientId, order.ClientOrderId, order.Account, order.Instrument, order.Side, order.Price, order.Leaves + order.Cum, order.Leaves);
        }
    }

    /// <summary>The highest clientSeq applied for <paramref name="clientId"/> (0 if none).</summary>
    public ulong LastClientSeq(uint clientId) => _clients.TryGetValue(clientId, out ClientState? c) ? c.LastSeq : 0;

    /// <summary>Clients in first-seen order with their last applied clientSeq.</summary>
    public IEnumerable<(uint ClientId, ulong LastSeq)> ClientSeqs => _clientsInOrder.Select(c => (c.Id, c.LastSeq));

    /// <summary>The open quantity and filled quantity of a live order (tests, tools).</summary>
    public bool TryGetOrder(uint clientId, ulong clientOrderId, out long leaves, out long cum, out long price)
    {
        leaves = cum = price = 0;
        if (!_byKey.TryGetValue(new OrderKey(clientId, clientOrderId), out int index))
        {
            return false;
        }
        ref Order order = ref _orders[index];
        (leaves, cum, price) = (order.Leaves, order.Cum, order.Price);
        return true;
    }

    /// <summary>The outcome kept for a request already applied, if it is still in the window.</summary>
    public bool TryGetOutcome(uint clientId, ulong clientSeq, out Outcome outcome)
    {
        outcome = default;
        if (clientSeq == 0 || !_clients.TryGetValue(clientId, out ClientState? client) || clientSeq > client.LastSeq)
        {
            return false;
        }
        outcome = client.Window[clientSeq & (ulong)(client.Window.Length - 1)];
        return outcome.ClientSeq == clientSeq;
    }

    /// <summary>
    /// Applies one journaled transaction; total: any transaction gets an outcome, nothing throws.
    /// A (clientId, clientSeq) already applied changes nothing and reports its original outcome
    /// again. One without a valid key (client id 0 or above <see cref="ProtocolLimits.MaxClientId"/>,
    /// clientSeq 0) is rejected and kept nowhere: there is nothing to keep it under. Any other that
    /// fails a stateless check is rejected with that reason as its logged outcome.
    /// </summary>
    public void Apply<TSink>(in Transaction tx, ulong lsn, ulong blockNo, in Hash32 blockHash, ref TSink sink)
        where TSink : struct, IExecutionSink
    {
        LastLsn = lsn;
        if (AdminTransaction.IsAdmin(tx.Kind))
        {
            _block = (blockNo, blockHash);
            RejectReason refused = ApplyAdmin(in tx, lsn, ref sink);
            if (refused != RejectReason.None)
            {
                sink.Rejected(in tx, refused, lsn);
            }
            return;
        }
        RejectReason stateless = TransactionCodec.Check(in tx);
        if (stateless is RejectReason.BadClientId or RejectReason.BadClientSeq)
        {
            sink.Rejected(in tx, stateless, lsn);
            return;
        }
        ClientState client = Client(tx.ClientId);
        if (tx.ClientSeq <= client.LastSeq)
        {
            AnswerDuplicate(in tx, ref sink);
            return;
        }
        _block = (blockNo, blockHash);
        RejectReason reason = stateless != RejectReason.None ? stateless : CheckInstrument(in tx);
        if (reason == RejectReason.None)
        {
            reason = tx.Kind switch
            {
                MessageType.NewOrder => NewOrder(in tx, lsn, ref sink),
                MessageType.Cancel => Cancel(in tx, lsn, ref sink),
                MessageType.Replace => Replace(in tx, lsn, ref sink),
                _ => RejectReason.UnknownMessageType,
            };
        }
        if (reason != RejectReason.None)
        {
            sink.Rejected(in tx, reason, lsn);
        }
        client.Record(new Outcome { ClientSeq = tx.ClientSeq, Lsn = lsn, BlockNo = blockNo, BlockHash = blockHash, Reason = reason });
    }

    /// <summary>
    /// Answers a request whose (clientId, clientSeq) was applied before with its original outcome,
    /// changing nothing; <see cref="RejectReason.StaleClientSeq"/> if that outcome is no longer kept.
    /// </summary>
    public void AnswerDuplicate<TSink>(in Transaction tx, ref TSink sink)
        where TSink : struct, IExecutionSink
    {
        if (!TryGetOutcome(tx.ClientId, tx.ClientSeq, out Outcome outcome))
        {
            sink.Rejected(in tx, RejectReason.StaleClientSeq, 0);
        }
        else if (outcome.Reason == RejectReason.None)
        {
            sink.Accepted(in tx, outcome.Lsn, outcome.BlockNo, in outcome.BlockHash);
        }
        else
        {
            sink.Rejected(in tx, outcome.Reason, outcome.Lsn);
        }
    }

    private RejectReason NewOrder<TSink>(in Transaction tx, ulong lsn, ref TSink sink)
        where TSink : struct, IExecutionSink
    {
        OrderBook? book = tx.Instrument < (uint)_books.Length ? _books[tx.Instrument] : null;
        if (book is null)
        {
            return RejectReason.UnknownInstrument;
        }
        RejectReason entitled = CheckEntitlement(tx.ClientId, tx.Account);
        if (entitled != RejectReason.None)
        {
            return entitled;
        }
        if (book.Definition.Halted)
        {
            return RejectReason.InstrumentHalted;
        }
        if (!_accounts.TryGetValue(tx.Account, out AccountState? account))
        {
            return RejectReason.AccountNotAllowed;
        }
        bool market = tx.Type == OrderType.Market;
        long reference = book.ReferencePrice;
        if (market && reference == 0)
        {
            return RejectReason.NoReferencePrice;
        }
        if (!market && !book.InBand(tx.Price))
        {
            return RejectReason.PriceOutsideBand;
        }
        // A market order's notional is its quantity at the reference price.
        RejectReason risk = CheckRisk(account, tx.Quantity, market ? reference : tx.Price, rests: !market && tx.TimeInForce == TimeInForce.Gtc);
        if (risk != RejectReason.None)
        {
            return risk;
        }
        if (_byKey.ContainsKey(new OrderKey(tx.ClientId, tx.ClientOrderId)))
        {
            return RejectReason.DuplicateOrderId;
        }
        sink.Accepted(in tx, lsn, _block.No, in _block.Hash);

        var taker = new Taker(tx.ClientId, tx.Account, tx.ClientSeq, tx.ClientOrderId, tx.Instrument, tx.Side, lsn);
        BookSide opposite = tx.Side == Side.Buy ? book.Asks : book.Bids;
        long remaining = tx.Quantity;
        long cum = 0;
        // Within a band, a market order trades as a limit order at the band's edge (market protection).
        (long matchPrice, bool matchAsMarket) = market && book.BandEdge(tx.Side) is { } edge ? (edge, false) : (tx.Price, market);
        if (tx.TimeInForce == TimeInForce.Fok && !CanFill(opposite, matchPrice, matchAsMarket, remaining))
        {
            sink.Execution(taker.Report(ExecType.Cancelled, 0, 0, 0, 0, 0));
            return RejectReason.None;
        }
        Match(book, opposite, in taker, matchPrice, matchAsMarket, ref remaining, ref cum, ref sink);
        if (remaining > 0)
        {
            if (!market && tx.TimeInForce == TimeInForce.Gtc)
            {
                Rest(book, account, in taker, tx.Price, remaining, cum);
            }
            else
            {
                sink.Execution(taker.Report(ExecType.Cancelled, 0, 0, 0, 0, cum));
            }
        }
        return RejectReason.None;
    }

    private RejectReason Cancel<TSink>(in Transaction tx, ulong lsn, ref TSink sink)
        where TSink : struct, IExecutionSink
    {
        if (!TryFindOwnOrder(in tx, out int index))
        {
            return RejectReason.UnknownOrder;
        }
        sink.Accepted(in tx, lsn, _block.No, in _block.Hash);
        CancelResting(index, tx.ClientSeq, lsn, ref sink);
        return RejectReason.None;
    }

    /// <summary>Takes a resting order off its book, reported to its owner as cancelled by the transaction at <paramref name="lsn"/> (its request's clientSeq; 0 for an operator's).</summary>
    private void CancelResting<TSink>(int index, ulong clientSeq, ulong lsn, ref TSink sink)
        where TSink : struct, IExecutionSink
    {
        ref Order order = ref _orders[index];
        sink.Execution(new ExecutionReport
        {
            ClientId = order.ClientId,
            Account = order.Account,
            ClientSeq = clientSeq,
            ClientOrderId = order.ClientOrderId,
            CumQuantity = order.Cum,
            Lsn = lsn,
            Instrument = order.Instrument,
            ExecType = ExecType.Cancelled,
            Side = order.Side,
        });
        RemoveOrder(index);
    }

    private RejectReason Replace<TSink>(in Transaction tx, ulong lsn, ref TSink sink)
        where TSink : struct, IExecutionSink
    {
        if (!TryFindOwnOrder(in tx, out int index))
        {
            return RejectReason.UnknownOrder;
        }
        ref Order order = ref _orders[index];
        if (_byKey.ContainsKey(new OrderKey(tx.ClientId, tx.ClientOrderId)))
        {
            return RejectReason.DuplicateOrderId;
        }
        long leaves = tx.Quantity - order.Cum;
        if (leaves <= 0)
        {
            return RejectReason.ReplaceQuantityTooLow;
        }
        AccountState account = _accounts[order.Account];
        OrderBook book = _books[order.Instrument]!;
        RejectReason entitled = CheckEntitlement(tx.ClientId, order.Account);
        if (entitled != RejectReason.None)
        {
            return entitled;
        }
        if (book.Definition.Halted)
        {
            return RejectReason.InstrumentHalted;
        }
        if (!book.InBand(tx.Price))
        {
            return RejectReason.PriceOutsideBand;
        }
        RejectReason risk = CheckRisk(account, tx.Quantity, tx.Price, rests: false);
        if (risk != RejectReason.None)
        {
            return risk;
        }
        sink.Accepted(in tx, lsn, _block.No, in _block.Hash);

        BookSide own = order.Side == Side.Buy ? book.Bids : book.Asks;
        _byKey.Remove(new OrderKey(order.ClientId, order.ClientOrderId));
        _byKey[new OrderKey(tx.ClientId, tx.ClientOrderId)] = index;
        order.ClientOrderId = tx.ClientOrderId;
        order.ClientSeq = tx.ClientSeq;
        var taker = new Taker(order.ClientId, order.Account, tx.ClientSeq, tx.ClientOrderId, order.Instrument, order.Side, lsn);
        if (tx.Price == order.Price && leaves <= order.Leaves)
        {
            // Same price, no more quantity: it keeps its place in the queue.
            own.Reduce(order.Level, order.Leaves - leaves);
            order.Leaves = leaves;
            sink.Execution(taker.Report(ExecType.Replaced, 0, order.Price, 0, leaves, order.Cum));
            return RejectReason.None;
        }

        // A new price or more quantity: to the back of the queue, trading first if it now crosses.
        own.Remove(index, _orders);
        order.Price = tx.Price;
        order.Leaves = leaves;
        sink.Execution(taker.Report(ExecType.Replaced, 0, tx.Price, 0, leaves, order.Cum));
        long remaining = leaves;
        long cum = order.Cum;
        BookSide opposite = order.Side == Side.Buy ? book.Asks : book.Bids;
        Match(book, opposite, in taker, tx.Price, market: false, ref remaining, ref cum, ref sink);
        ref Order moved = ref _orders[index];
        if (remaining > 0)
        {
            moved.Leaves = remaining;
            moved.Cum = cum;
            own.Append(index, _orders);
        }
        else
        {
            _byKey.Remove(new OrderKey(moved.ClientId, moved.ClientOrderId));
            account.Open--;
            _orders.Free(index);
        }
        return RejectReason.None;
    }

    /// <summary>
    /// The live order a cancel or replace names: keyed by the sender's own client id (so nobody
    /// reaches another client's orders), on the account and instrument the request says.
    /// </summary>
    private bool TryFindOwnOrder(in Transaction tx, out int index) =>
        _byKey.TryGetValue(new OrderKey(tx.ClientId, tx.OrigClientOrderId), out index)
        && _orders[index].Account == tx.Account
        && _orders[index].Instrument == tx.Instrument;

    /// <summary>The account's limits for an order of <paramref name="quantity"/> at <paramref name="price"/> (a market order's: the reference price).</summary>
    private static RejectReason CheckRisk(AccountState account, long quantity, long price, bool rests)
    {
        AccountLimits limits = account.Limits;
        if (quantity > limits.MaxOrderQuantity)
        {
            return RejectReason.RiskMaxQuantity;
        }
        if ((Int128)price * quantity > limits.MaxOrderNotional)
        {
            return RejectReason.RiskMaxNotional;
        }
        return rests && account.Open >= limits.MaxOpenOrders ? RejectReason.RiskMaxOpenOrders : RejectReason.None;
    }

    private static bool CanFill(BookSide opposite, long price, bool market, long quantity)
    {
        for (int i = 0; i < opposite.LevelCount && quantity > 0; i++)
        {
            ref Level level = ref opposite[opposite.LevelFromBest(i)];
            if (!opposite.Crosses(level.Price, price, market))
            {
                break;
            }
            quantity -= level.Quantity;
        }
        return quantity <= 0;
    }

    /// <summary>Trades the taker against the opposite side while it crosses; reports both sides of every fill.</summary>
    private void Match<TSink>(OrderBook book, BookSide opposite, in Taker taker, long price, bool market, ref long remaining, ref long cum, ref TSink sink)
        where TSink : struct, IExecutionSink
    {
        while (remaining > 0)
        {
            int level = opposite.Best;
            if (level < 0 || !opposite.Crosses(opposite[level].Price, price, market))
            {
                return;
            }
            long tradePrice = opposite[level].Price;
            book.LastTradePrice = tradePrice;
            bool levelGone = false;
            while (remaining > 0 && !levelGone)
            {
                int makerIndex = opposite[level].Head;
                ref Order maker = ref _orders[makerIndex];
                long fill = Math.Min(remaining, maker.Leaves);
                ulong tradeId = _nextTradeId++;
                remaining -= fill;
                cum += fill;
                maker.Leaves -= fill;
                maker.Cum += fill;
                opposite.Reduce(level, fill);
                sink.Execution(new ExecutionReport
                {
                    ClientId = maker.ClientId,
                    Account = maker.Account,
                    ClientSeq = maker.ClientSeq,
                    ClientOrderId = maker.ClientOrderId,
                    TradeId = tradeId,
                    LastPrice = tradePrice,
                    LastQuantity = fill,
                    LeavesQuantity = maker.Leaves,
                    CumQuantity = maker.Cum,
                    Lsn = taker.Lsn,
                    Instrument = maker.Instrument,
                    ExecType = maker.Leaves == 0 ? ExecType.Fill : ExecType.PartialFill,
                    Side = maker.Side,
                });
                sink.Execution(taker.Report(remaining == 0 ? ExecType.Fill : ExecType.PartialFill, tradeId, tradePrice, fill, remaining, cum));
                if (maker.Leaves == 0)
                {
                    levelGone = opposite[level].Count == 1;
                    // Leaves is 0, so removing it takes nothing more off the level's quantity.
                    RemoveOrder(makerIndex);
                }
            }
        }
    }

    private void Rest(OrderBook book, AccountState account, in Taker taker, long price, long leaves, long cum)
    {
        int index = _orders.Allocate();
        ref Order order = ref _orders[index];
        order.ClientOrderId = taker.ClientOrderId;
        order.ClientSeq = taker.ClientSeq;
        order.ClientId = taker.ClientId;
        order.Account = taker.Account;
        order.Instrument = taker.Instrument;
        order.Side = taker.Side;
        order.Price = price;
        order.Leaves = leaves;
        order.Cum = cum;
        (taker.Side == Side.Buy ? book.Bids : book.Asks).Append(index, _orders);
        _byKey.Add(new OrderKey(taker.ClientId, taker.ClientOrderId), index);
        account.Open++;
    }

    private void RemoveOrder(int index)
    {
        ref Order order = ref _orders[index];
        OrderBook book = _books[order.Instrument]!;
        (order.Side == Side.Buy ? book.Bids : book.Asks).Remove(index, _orders);
        _byKey.Remove(new OrderKey(order.ClientId, order.ClientOrderId));
        _accounts[order.Account].Open--;
        _orders.Free(index);
    }

    private ClientState Client(uint clientId)
    {
        if (!_clients.TryGetValue(clientId, out ClientState? client))
        {
            client = new ClientState(clientId);
            _clients.Add(clientId, client);
            _clientsInOrder.Add(client);
        }
        return client;
    }

    /// <summary>
    /// SHA-256 over a canonical walk of the whole state: instruments by id, each side best level
    /// first and each level oldest order first; accounts by id; clients in first-seen order with
    /// their dedupe windows; the trade counter and the last LSN.
    /// </summary>
    public Hash32 ComputeChecksum()
    {
        using var hasher = new StateHasher();
        hasher.Add(LastLsn);
        hasher.Add(_nextTradeId);
        foreach (OrderBook? book in _books)
        {
            if (book is null)
            {
                continue;
            }
            hasher.Add(book.Instrument);
            hasher.Add(book.LastTradePrice);
            Ledger.Instrument definition = book.Definition;
            hasher.Add(AdminTransaction.PackSymbol(definition.Symbol));
            hasher.Add(definition.TickSize);
            hasher.Add(definition.ReferencePrice);
            hasher.Add((ulong)definition.PriceBandBps);
            hasher.Add(definition.Halted ? 1UL : 0UL);
            foreach (BookSide side in new[] { book.Bids, book.Asks })
            {
                hasher.Add(side.LevelCount);
                for (int i = 0; i < side.LevelCount; i++)
                {
                    ref Level level = ref side[side.LevelFromBest(i)];
                    hasher.Add(level.Price);
                    hasher.Add(level.Quantity);
                    for (int o = level.Head; o >= 0; o = _orders[o].Next)
                    {
                        ref Order order = ref _orders[o];
                        hasher.Add(order.ClientId);
                        hasher.Add(order.ClientOrderId);
                        hasher.Add(order.ClientSeq);
                        hasher.Add(order.Account);
                        hasher.Add(order.Leaves);
                        hasher.Add(order.Cum);
                    }
                }
            }
        }
        foreach (uint id in _accounts.Keys.Order())
        {
            AccountState account = _accounts[id];
            hasher.Add(id);
            hasher.Add(account.Open);
            hasher.Add(account.Limits.MaxOrderQuantity);
            hasher.Add(account.Limits.MaxOrderNotional);
            hasher.Add((ulong)account.Limits.MaxOpenOrders);
        }
        foreach (var (id, grants) in _grants.OrderBy(g => g.Key))
        {
            hasher.Add(id);
            hasher.Add(grants.Enabled ? 1UL : 0UL);
            hasher.Add((ulong)grants.Accounts.Length);
            foreach (AccountRange range in grants.Accounts)
            {
                hasher.Add(range.First);
                hasher.Add(range.Last);
            }
        }
        foreach (ClientState client in _clientsInOrder)
        {
            hasher.Add(client.Id);
            hasher.Add(client.LastSeq);
            foreach (ref readonly Outcome outcome in client.Window.AsSpan())
            {
                hasher.Add(outcome.ClientSeq);
                hasher.Add(outcome.Lsn);
                hasher.Add(outcome.BlockNo);
                hasher.Add((ushort)outcome.Reason);
                hasher.Add(outcome.BlockHash);
            }
        }
        return hasher.Finish();
    }

    /// <summary>Checks every book's structure and the indexes against each other (tests).</summary>
    public void AssertInvariants()
    {
        int resting = 0;
        foreach (OrderBook? book in _books)
        {
            if (book is null)
            {
                continue;
            }
            book.Bids.AssertInvariants(_orders);
            book.Asks.AssertInvariants(_orders);
            // The book is never crossed: every crossing order trades before it rests.
            if (book.Bids.Best >= 0 && book.Asks.Best >= 0 && book.Bids[book.Bids.Best].Price >= book.Asks[book.Asks.Best].Price)
            {
                throw new InvalidOperationException($"book {book.Instrument} is crossed: bid {book.Bids[book.Bids.Best].Price} ≥ ask {book.Asks[book.Asks.Best].Price}");
            }
            for (int s = 0; s < 2; s++)
            {
                BookSide side = s == 0 ? book.Bids : book.Asks;
                for (int i = 0; i < side.LevelCount; i++)
                {
                    resting += side[side.LevelFromBest(i)].Count;
                }
            }
        }
        // Every live order is on a book and in the key index; open counts add up.
        if (resting != _orders.Live || _byKey.Count != _orders.Live || _accounts.Values.Sum(a => a.Open) != _orders.Live)
        {
            throw new InvalidOperationException($"{_orders.Live} live orders, {resting} on books, {_byKey.Count} keys, {_accounts.Values.Sum(a => a.Open)} counted open");
        }
        // No account has fewer than no open orders.
        if (_accounts.Values.Any(a => a.Open < 0))
        {
            throw new InvalidOperationException("an account counts negative open orders");
        }
        // Every key names a resting order with that key, and every resting order is within the protocol's limits.
        foreach (var (key, index) in _byKey)
        {
            ref Order order = ref _orders[index];
            if (order.ClientId != key.ClientId || order.ClientOrderId != key.ClientOrderId)
            {
                throw new InvalidOperationException($"key {key} names order {order.ClientId}/{order.ClientOrderId}");
            }
            if (order.Price is <= 0 or > ProtocolLimits.MaxPrice || order.Leaves + order.Cum > ProtocolLimits.MaxQuantity || order.Side is not (Side.Buy or Side.Sell))
            {
                throw new InvalidOperationException($"order {key} rests at {order.Price} with {order.Leaves} open, {order.Cum} filled, side {order.Side}");
            }
        }
        // The clients are indexed once each, in first-seen order, and each window is sane.
        if (_clientsInOrder.Count != _clients.Count)
        {
            throw new InvalidOperationException($"{_clients.Count} clients, {_clientsInOrder.Count} in order");
        }
        foreach (ClientState client in _clientsInOrder)
        {
            client.AssertInvariants();
        }
    }

    private readonly record struct Taker(uint ClientId, uint Account, ulong ClientSeq, ulong ClientOrderId, uint Instrument, Side Side, ulong Lsn)
    {
        public ExecutionReport Report(ExecType type, ulong tradeId, long lastPrice, long lastQuantity, long leaves, long cum) => new()
        {
            ClientId = ClientId,
            Account = Account,
            ClientSeq = ClientSeq,
            ClientOrderId = ClientOrderId,
            TradeId = tradeId,
            LastPrice = lastPrice,
            LastQuantity = lastQuantity,
            LeavesQuantity = leaves,
            CumQuantity = cum,
            Lsn = Lsn,
            Instrument = Instrument,
            ExecType = type,
            Side = Side,
        };
    }

    private sealed class OrderBook(Ledger.Instrument instrument)
    {
        public uint Instrument { get; } = instrument.Id;

        /// <summary>The instrument's reference data as the ledger has it now (admin transactions replace it).</summary>
        public Ledger.Instrument Definition { get; set; } = instrument;

        /// <summary>The price of the last trade on this book; 0 before the first.</summary>
        public long LastTradePrice;

        /// <summary>The last trade's price, else the configured one (0: none yet).</summary>
        public long ReferencePrice => LastTradePrice != 0 ? LastTradePrice : Definition.ReferencePrice;

        /// <summary>True when <paramref name="price"/> is within the band around the reference price (always, without a band or a reference price).</summary>
        public bool InBand(long price)
        {
            long reference = ReferencePrice;
            if (Definition.PriceBandBps == 0 || reference == 0)
            {
                return true;
            }
            // Prices are at most 10^12 and the band at most 10^5 bps: the products fit an Int128 with room.
            Int128 distance = price > reference ? price - reference : reference - price;
            return distance * 10_000 <= (Int128)reference * Definition.PriceBandBps;
        }

        /// <summary>The furthest price a market order on <paramref name="side"/> may trade at (on the tick, inside the band); null without a band.</summary>
        public long? BandEdge(Side side)
        {
            long reference = ReferencePrice;
            if (Definition.PriceBandBps == 0 || reference == 0)
            {
                return null;
            }
            long width = (long)((Int128)reference * Definition.PriceBandBps / 10_000) / Definition.TickSize * Definition.TickSize;
            return side == Side.Buy ? reference + width : Math.Max(Definition.TickSize, reference - width);
        }

        public BookSide Bids { get; } = new(Side.Buy);

        public BookSide Asks { get; } = new(Side.Sell);
    }

    private sealed class AccountState(AccountLimits limits)
    {
        public AccountLimits Limits { get; set; } = limits;

        public int Open;
    }

    /// <summary>
    /// One client's idempotency state: the last clientSeq applied and a ring of outcomes indexed by
    /// clientSeq. The ring is as long as the span of seqs seen (rounded up to a power of two) up to
    /// <see cref="DedupeWindow"/>, so every outcome within the window is always kept, while a client
    /// that sent a handful of requests costs a handful of entries. It grows only with the seqs in
    /// the log, so it is the same on every node. Any increasing sequence of seqs is fine, jumps of
    /// any size included: a span of the window or more takes the whole window (rounding a span
    /// above 2^63 up to a power of two would wrap to 0).
    /// </summary>
    private sealed class ClientState(uint id)
    {
        private const int InitialWindow = 16;

        private ulong _firstSeq;

        public uint Id { get; } = id;

        public ulong LastSeq;

        public Outcome[] Window { get; private set; } = new Outcome[InitialWindow];

        /// <summary>Keeps the outcome of a seq above <see cref="LastSeq"/> (the only kind Apply records) and makes it the last.</summary>
        public void Record(in Outcome outcome)
        {
            ulong seq = outcome.ClientSeq;
            if (_firstSeq == 0)
            {
                _firstSeq = seq;
            }
            if (Window.Length < DedupeWindow)
            {
                // seq > LastSeq ≥ _firstSeq - 1, so the distance does not wrap; from the window on, the whole window.
                ulong distance = seq - _firstSeq;
                int length = distance >= DedupeWindow - 1 ? DedupeWindow : (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)distance + 1);
                if (length > Window.Length)
                {
                    Grow(length);
                }
            }
            Window[seq & (ulong)(Window.Length - 1)] = outcome;
            LastSeq = seq;
        }

        /// <summary>The first clientSeq applied (0 before any): the window's length follows from it and the last.</summary>
        public ulong FirstSeq => _firstSeq;

        /// <summary>A length a window can have: a power of two from the initial size to the dedupe window.</summary>
        public static bool IsWindowLength(uint length) => System.Numerics.BitOperations.IsPow2(length) && length is >= InitialWindow and <= DedupeWindow;

        /// <summary>
        /// Sets the state a snapshot holds, after checking it is one <see cref="Record"/> could have made
        /// (the window's length from the first and last seq, each kept outcome in its seq's slot and
        /// between them, the last one kept); else says what is wrong and changes nothing.
        /// </summary>
        public string? Restore(ulong lastSeq, ulong firstSeq, Outcome[] window)
        {
            if ((lastSeq == 0) != (firstSeq == 0) || firstSeq > lastSeq)
            {
                return $"first seq {firstSeq}, last seq {lastSeq}";
            }
            ulong distance = lastSeq - firstSeq;
            int expected = distance >= DedupeWindow - 1 ? DedupeWindow : Math.Max(InitialWindow, (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)distance + 1));
            if (window.Length != expected)
            {
                return $"a window of {window.Length} where seqs {firstSeq}..{lastSeq} make one of {expected}";
            }
            ulong mask = (ulong)window.Length - 1;
            for (int i = 0; i < window.Length; i++)
            {
                ulong seq = window[i].ClientSeq;
                ref readonly Outcome kept = ref window[i];
                bool empty = kept.Lsn == 0 && kept.BlockNo == 0 && kept.Reason == RejectReason.None && kept.BlockHash == Hash32.Zero;
                if (seq != 0 ? (int)(seq & mask) != i || seq > lastSeq || seq < firstSeq : !empty)
                {
                    return $"slot {i} holds seq {seq} (window of {window.Length}, seqs {firstSeq}..{lastSeq})";
                }
            }
            if (lastSeq != 0 && window[lastSeq & mask].ClientSeq != lastSeq)
            {
                return $"the outcome of its last seq {lastSeq} is not kept";
            }
            LastSeq = lastSeq;
            _firstSeq = firstSeq;
            Window = window;
            return null;
        }

        /// <summary>The window's shape and contents agree with the seqs (tests: one sentence per relationship).</summary>
        public void AssertInvariants()
        {
            // The ring is a power of two, at least the initial size and at most the dedupe window.
            if (!System.Numerics.BitOperations.IsPow2(Window.Length) || Window.Length < InitialWindow || Window.Length > DedupeWindow)
            {
                throw new InvalidOperationException($"client {Id}: a window of {Window.Length}");
            }
            for (int i = 0; i < Window.Length; i++)
            {
                ulong seq = Window[i].ClientSeq;
                // Every kept outcome sits in its seq's slot, is not above the last seq and not below the first.
                if (seq != 0 && ((int)(seq & (ulong)(Window.Length - 1)) != i || seq > LastSeq || seq < _firstSeq))
                {
                    throw new InvalidOperationException($"client {Id}: seq {seq} at slot {i} of {Window.Length}, last {LastSeq}, first {_firstSeq}");
                }
            }
            // The last seq's outcome is always kept.
            if (LastSeq != 0 && Window[LastSeq & (ulong)(Window.Length - 1)].ClientSeq != LastSeq)
            {
                throw new InvalidOperationException($"client {Id}: the outcome of its last seq {LastSeq} is not kept");
            }
        }

        private void Grow(int length)
        {
            var grown = new Outcome[length];
            foreach (ref readonly Outcome kept in Window.AsSpan())
            {
                if (kept.ClientSeq != 0)
                {
                    grown[kept.ClientSeq & (ulong)(length - 1)] = kept;
                }
            }
            Window = grown;
        }
    }

    /// <summary>Feeds fixed-width little-endian values to SHA-256 through a small buffer.</summary>
    private sealed class StateHasher : IDisposable
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly byte[] _buffer = new byte[8192];
        private int _used;

        public void Add(long value) => Add((ulong)value);

        public void Add(ulong value)
        {
            Room(8);
            BinaryPrimitives.WriteUInt64LittleEndian(_buffer.AsSpan(_used), value);
            _used += 8;
        }

        public void Add(in Hash32 hash)
        {
            Room(Hash32.Bytes);
            ((ReadOnlySpan<byte>)hash).CopyTo(_buffer.AsSpan(_used));
            _used += Hash32.Bytes;
        }

        public Hash32 Finish()
        {
            _hash.AppendData(_buffer, 0, _used);
            _used = 0;
            return Hash32.From(_hash.GetHashAndReset());
        }

        private void Room(int bytes)
        {
            if (_used + bytes > _buffer.Length)
            {
                _hash.AppendData(_buffer, 0, _used);
                _used = 0;
            }
        }

        public void Dispose() => _hash.Dispose();
    }
}

/// <summary>A resting order as <see cref="Exchange.RestingOrders"/> gives it: <paramref name="Quantity"/> as placed (filled plus open), <paramref name="Open"/> still on the book.</summary>
public readonly record struct RestingOrder(uint ClientId, ulong ClientOrderId, uint Account, uint Instrument, Side Side, long Price, long Quantity, long Open);
