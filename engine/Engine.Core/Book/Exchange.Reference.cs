using System.Collections.Immutable;
using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Core.Book;

/// <summary>
/// The reference data as part of the state: instruments (with their trading halt), accounts with
/// their limits, clients with the accounts they may trade for. Defined and changed only by admin
/// transactions (<see cref="AdminTransaction"/>) applied in log order, like orders: both nodes of a
/// pair hold the same tables whatever their configuration files say, replay rebuilds them, the
/// snapshot carries them and the state checksum covers them.
/// </summary>
public sealed partial class Exchange
{
    private readonly Dictionary<uint, ClientGrants> _grants = [];

    // Published for the threads that check requests before the ledger; replaced, never changed.
    private ReferenceView _view = ReferenceView.Empty;

    // Admin transactions applied in a run (replay of a block, a snapshot's load) publish once, at its end.
    private int _publishingHeld;
    private bool _changedWhileHeld;

    /// <summary>
    /// Holds back publishing the reference data until <see cref="ReleasePublishing"/>: a whole block's
    /// admin transactions (a new ledger's initial set is hundreds) then make one copy, not one each.
    /// </summary>
    public void HoldPublishing() => _publishingHeld++;

    /// <summary>Ends a <see cref="HoldPublishing"/>, publishing once if anything changed meanwhile.</summary>
    public void ReleasePublishing()
    {
        if (--_publishingHeld == 0 && _changedWhileHeld)
        {
            _changedWhileHeld = false;
            Publish();
        }
    }

    /// <summary>The reference data as of the last admin transaction applied: safe to read from any thread.</summary>
    public ReferenceView Reference => Volatile.Read(ref _view);

    /// <summary>True once any admin transaction has defined an instrument, an account or a client.</summary>
    public bool HasReferenceData => !Reference.IsEmpty;

    /// <summary>The instrument checks of a request: known, and a price on its tick.</summary>
    private RejectReason CheckInstrument(in Transaction tx)
    {
        OrderBook? book = tx.Instrument < (uint)_books.Length ? _books[tx.Instrument] : null;
        if (book is null)
        {
            return RejectReason.UnknownInstrument;
        }
        return tx.Price != 0 && tx.Price % book.Definition.TickSize != 0 ? RejectReason.PriceNotOnTick : RejectReason.None;
    }

    /// <summary>Whether the client may enter an order for the account now: enabled, and granted it.</summary>
    private RejectReason CheckEntitlement(uint clientId, uint account) =>
        !_grants.TryGetValue(clientId, out ClientGrants? grants) ? RejectReason.AccountNotAllowed
        : !grants.Enabled ? RejectReason.ClientDisabled
        : grants.MayTrade(account) ? RejectReason.None : RejectReason.AccountNotAllowed;

    /// <summary>
    /// Applies an admin transaction: its stateless checks (<see cref="AdminTransaction.Check"/>), then
    /// what it needs of the state; on success tells <paramref name="sink"/> it is accepted, then the
    /// execution reports it causes (cancel-all). Returns the refusal, having changed nothing.
    /// </summary>
    private RejectReason ApplyAdmin<TSink>(in Transaction tx, ulong lsn, ref TSink sink)
        where TSink : struct, IExecutionSink
    {
        RejectReason reason = AdminTransaction.Check(in tx);
        if (reason != RejectReason.None)
        {
            return reason;
        }
        OrderBook? book = tx.Instrument < (uint)_books.Length ? _books[tx.Instrument] : null;
        ClientGrants? grants = _grants.GetValueOrDefault(tx.ClientId);
        switch (tx.Kind)
        {
            case MessageType.InstrumentDefine:
                AdminTransaction.TryUnpackSymbol(tx.ClientOrderId, out string symbol);
                var definition = new Instrument(tx.Instrument, symbol, tx.Quantity) { ReferencePrice = tx.Price, PriceBandBps = (int)tx.Account, Halted = book?.Definition.Halted ?? false };
                sink.Accepted(in tx, lsn, _block.No, in _block.Hash);
                if (book is null)
                {
                    if (tx.Instrument >= (uint)_books.Length)
                    {
                        Array.Resize(ref _books, (int)tx.Instrument + 1);
                    }
                    _books[tx.Instrument] = new OrderBook(definition);
                }
                else
                {
                    book.Definition = definition;
                }
                break;
            case MessageType.InstrumentHalt or MessageType.InstrumentResume:
                if (book is null)
                {
                    return RejectReason.UnknownInstrument;
                }
                sink.Accepted(in tx, lsn, _block.No, in _block.Hash);
                book.Definition = book.Definition with { Halted = tx.Kind == MessageType.InstrumentHalt };
                break;
            case MessageType.AccountLimits:
                var limits = new AccountLimits(tx.Quantity, tx.Price, (int)tx.OrigClientOrderId);
                sink.Accepted(in tx, lsn, _block.No, in _block.Hash);
                if (_accounts.TryGetValue(tx.Account, out AccountState? account))
                {
                    account.Limits = limits;
                }
                else
                {
                    _accounts.Add(tx.Account, new AccountState(limits));
                }
                break;
            case MessageType.ClientEnable:
                sink.Accepted(in tx, lsn, _block.No, in _block.Hash);
                _grants[tx.ClientId] = grants is null ? new ClientGrants(true, []) : grants with { Enabled = true };
                break;
            case MessageType.ClientDisable:
                if (grants is null)
                {
                    return RejectReason.UnknownClient;
                }
                sink.Accepted(in tx, lsn, _block.No, in _block.Hash);
                _grants[tx.ClientId] = grants with { Enabled = false };
                break;
            case MessageType.ClientGrant:
                if (grants is null)
                {
                    return RejectReason.UnknownClient;
                }
                ImmutableArray<AccountRange> merged = AccountRanges.Merge(grants.Accounts, new AccountRange(tx.Account, (uint)tx.OrigClientOrderId));
                if (merged.Length > ClientGrants.MaxRanges)
                {
                    return RejectReason.TooManyGrants;
                }
                sink.Accepted(in tx, lsn, _block.No, in _block.Hash);
                _grants[tx.ClientId] = grants with { Accounts = merged };
                break;
            case MessageType.CancelAllClient:
                sink.Accepted(in tx, lsn, _block.No, in _block.Hash);
                CancelAll(lsn, static (in Order order, uint clientId) => order.ClientId == clientId, tx.ClientId, 1, (uint)(_books.Length - 1), ref sink);
                return RejectReason.None; // the reference data did not change
            case MessageType.CancelAllInstrument:
                if (book is null)
                {
                    return RejectReason.UnknownInstrument;
                }
                sink.Accepted(in tx, lsn, _block.No, in _block.Hash);
                CancelAll(lsn, static (in Order _, uint _) => true, 0, tx.Instrument, tx.Instrument, ref sink);
                return RejectReason.None;
            default:
                return RejectReason.UnknownMessageType;
        }
        Publish();
        return RejectReason.None;
    }

    private delegate bool OrderFilter(in Order order, uint argument);

    /// <summary>
    /// Cancels every resting order on instruments <paramref name="first"/>..<paramref name="last"/>
    /// that <paramref name="filter"/> selects, in a fixed order (instrument, bids then asks, best level
    /// first, oldest first: never a hash table's), each reported to its owner as cancelled at
    /// <paramref name="lsn"/> with clientSeq 0 (no request of its own asked for it).
    /// </summary>
    private void CancelAll<TSink>(ulong lsn, OrderFilter filter, uint argument, uint first, uint last, ref TSink sink)
        where TSink : struct, IExecutionSink
    {
        var chosen = new List<int>();
        for (uint instrument = first; instrument <= last && instrument < (uint)_books.Length; instrument++)
        {
            if (_books[instrument] is not { } book)
            {
                continue;
            }
            foreach (BookSide side in (ReadOnlySpan<BookSide>)[book.Bids, book.Asks])
            {
                for (int i = 0; i < side.LevelCount; i++)
                {
                    for (int o = side[side.LevelFromBest(i)].Head; o >= 0; o = _orders[o].Next)
                    {
                        if (filter(in _orders[o], argument))
                        {
                            chosen.Add(o);
                        }
                    }
                }
            }
        }
        foreach (int index in chosen)
        {
            CancelResting(index, clientSeq: 0, lsn, ref sink);
        }
    }

    /// <summary>Publishes the tables as they are now (after an admin transaction, or a snapshot's load), unless held.</summary>
    private void Publish()
    {
        if (_publishingHeld > 0)
        {
            _changedWhileHeld = true;
            return;
        }
        Volatile.Write(ref _view, new ReferenceView(
        new InstrumentTable(_books.Where(b => b is not null).Select(b => b!.Definition)),
        _accounts.ToImmutableSortedDictionary(a => a.Key, a => a.Value.Limits),
        _grants.ToImmutableSortedDictionary()));
    }

    /// <summary>A sink for what nobody is told: the reference data a test's book starts with.</summary>
    private readonly struct NoReports : IExecutionSink
    {
        public void Accepted(in Transaction tx, ulong lsn, ulong blockNo, in Hash32 blockHash)
        {
        }

        public void Rejected(in Transaction tx, RejectReason reason, ulong lsn)
        {
        }

        public void Execution(in ExecutionReport report)
        {
        }
    }
}
