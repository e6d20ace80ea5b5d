using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Protocol;

namespace Engine.Core.Ledger;

/// <summary>
/// The one way journaled transactions reach the order book: a whole block at a time
/// (<see cref="ApplyBlock"/>: replay at start-up, a backup applying what its primary sent) or one
/// transaction at a time (<see cref="Apply"/>: the live apply stage). Both end in the same
/// per-transaction step, so a node that replays its journal, a backup that follows its primary and
/// the primary that answered the clients make the same book from the same blocks, and the state
/// checksums they compare agree.
/// </summary>
/// <remarks>
/// Idempotency is the book's own: <see cref="Exchange.Apply"/> keeps each client's last clientSeq
/// and the outcomes of its dedupe window, so a transaction applied twice changes nothing. The
/// sealer's <see cref="ClientSeqTable"/> is not touched here; a node seeds it from the book when it
/// starts (<see cref="Exchange.ClientSeqs"/>), after replay or at a takeover.
/// </remarks>
public sealed class BlockApplier(Exchange exchange)
{
    /// <summary>The book the transactions are applied to: owned by the applying thread.</summary>
    public Exchange Exchange { get; } = exchange;

    /// <summary>
    /// Applies every record of a block, in order, telling <paramref name="sink"/> each outcome;
    /// returns how many were applied. The block's stored hash is what the receipts name, so it must
    /// have been verified (a journal opened by the engine, a backup's <see cref="ChainVerifier"/>).
    /// </summary>
    /// <exception cref="InvalidDataException">A record is refused (see <see cref="BlockRecords"/>); the records before it are applied.</exception>
    public int ApplyBlock<TSink>(BlockRecords records, ref TSink sink)
        where TSink : struct, IExecutionSink
    {
        ulong blockNo = records.Header.BlockNo;
        Hash32 hash = records.StoredHash;
        int applied = 0;
        Exchange.HoldPublishing();
        try
        {
            foreach (BlockRecord record in records)
            {
                // Order requests and admin transactions alike: the book dispatches on the kind.
                record.Read(out Transaction tx);
                Apply(in tx, record.Lsn, blockNo, in hash, ref sink);
                applied++;
            }
        }
        finally
        {
            Exchange.ReleasePublishing();
        }
        return applied;
    }

    /// <summary>
    /// Applies one journaled transaction at <paramref name="lsn"/> in block <paramref name="blockNo"/>
    /// (whose hash the receipt names), telling <paramref name="sink"/> its outcome and the execution
    /// reports it causes. Total: any transaction gets an outcome (<see cref="Exchange.Apply"/>).
    /// </summary>
    public void Apply<TSink>(in Transaction tx, ulong lsn, ulong blockNo, in Hash32 blockHash, ref TSink sink)
        where TSink : struct, IExecutionSink =>
        Exchange.Apply(in tx, lsn, blockNo, in blockHash, ref sink);
}
