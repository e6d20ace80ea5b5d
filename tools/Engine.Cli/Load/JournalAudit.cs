using System.Diagnostics;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;

namespace Engine.Cli.Load;

/// <summary>What a <see cref="JournalAudit"/> found.</summary>
/// <param name="Lost">Receipts whose order is not in the journal at the receipt's LSN, in the block the receipt names (its number and hash).</param>
/// <param name="Duplicates">Receipts whose order (clientId, clientSeq) is in the journal more than once.</param>
/// <param name="Split">Block numbers under which receipts name different blocks (different hashes): two primaries sealed at once.</param>
/// <param name="Unreadable">Where and why reading the journal stopped short, or null: orders after that point count as lost.</param>
internal sealed record AuditResult(long Lost, long Duplicates, long Split, string? Unreadable = null)
{
    /// <summary>Nothing lost, doubled or split.</summary>
    public bool Clean => Lost == 0 && Duplicates == 0 && Split == 0;

    /// <summary>Not known (the journal could not be opened): counts as a failure, never as clean.</summary>
    public static AuditResult Unknown(string why) => new(-1, -1, -1, why);
}

/// <summary>
/// The one check that every acknowledged order is in the journal exactly once: at its receipt's
/// LSN and in its receipt's block, journaled once, and no block number named by two receipts with
/// different hashes. <c>engine load --journal</c>, <c>engine demo</c> (through its load) and
/// <c>engine drill</c> (each round against the new primary, and every round's receipts at the end)
/// all judge with it.
/// </summary>
/// <remarks>
/// Reads only what the receipts need: the acknowledged orders where they occur, and the hash and
/// epoch of the blocks the receipts name. A receipt is checked against the block it names, not
/// only its LSN: a receipt of a block that is not in the chain (sealed by a primary whose suffix was
/// discarded) is lost even if another block put the same order at the same LSN. Split brain is
/// judged from the receipts alone; the journal can hold only one of the blocks.
/// </remarks>
internal sealed class JournalAudit
{
    /// <summary>How long <see cref="CheckAsync"/> waits, at most, for the journal to hold the last receipt's LSN.</summary>
    public static readonly TimeSpan DefaultWait = TimeSpan.FromSeconds(10);

    private readonly IReadOnlyCollection<AckedOrder> _acks;
    private readonly HashSet<(uint ClientId, ulong ClientSeq)> _orders;
    private readonly HashSet<ulong> _blocks;

    // What the last Read found.
    private readonly Dictionary<ulong, (uint ClientId, ulong ClientSeq)> _orderAt = [];
    private readonly Dictionary<(uint ClientId, ulong ClientSeq), int> _copies = [];
    private readonly Dictionary<ulong, (Hash32 Hash, ulong Epoch)> _blockAt = [];

    public JournalAudit(IReadOnlyCollection<AckedOrder> acks)
    {
        _acks = acks;
        _orders = [.. acks.Select(a => (a.ClientId, a.ClientSeq))];
        _blocks = [.. acks.Select(a => a.BlockNo)];
        NeededLsn = acks.Count == 0 ? 0 : acks.Max(a => a.Lsn);
    }

    /// <summary>The highest LSN a receipt names: a journal that ends before it cannot hold every acknowledged order yet.</summary>
    public ulong NeededLsn { get; }

    /// <summary>The highest LSN the last <see cref="Read"/> met.</summary>
    public ulong LastLsnRead { get; private set; }

    /// <summary>Where and why the last <see cref="Read"/> stopped short of the journal's committed end, or null.</summary>
    public string? Unreadable { get; private set; }

    /// <summary>
    /// Reads the journal's committed blocks from <paramref name="from"/> (an entry's address; the
    /// beginning by default), replacing what an earlier read found. Stops at the first entry that
    /// is not a block or holds a record that is refused (<see cref="BlockRecords"/>), and says so in
    /// <see cref="Unreadable"/>.
    /// </summary>
    public void Read(JournalReader reader, long? from = null)
    {
        _orderAt.Clear();
        _copies.Clear();
        _blockAt.Clear();
        LastLsnRead = 0;
        Unreadable = null;
        reader.Scan((entry, address) =>
        {
            string? shape = BlockRecords.TryOpen(entry, out BlockRecords records);
            if (shape is not null)
            {
                Unreadable = $"the entry at address {address} is not a block: {shape}";
                return false;
            }
            BlockHeader header = records.Header;
            if (_blocks.Contains(header.BlockNo))
            {
                _blockAt[header.BlockNo] = (records.StoredHash, header.Epoch);
            }
            string? refused;
            while (records.TryMoveNext(out refused))
            {
                BlockRecord record = records.Current;
                record.Read(out Transaction tx);
                var order = (tx.ClientId, tx.ClientSeq);
                if (_orders.Contains(order))
                {
                    _orderAt[record.Lsn] = order;
                    _copies[order] = _copies.GetValueOrDefault(order) + 1;
                }
                LastLsnRead = record.Lsn;
            }
            if (refused is not null)
            {
                Unreadable = $"block {header.BlockNo} at address {address}: {refused}";
                return false;
            }
            return true;
        }, from);
    }

    /// <summary>Judges the receipts against what the last <see cref="Read"/> found.</summary>
    public AuditResult Judge()
    {
        long lost = 0, duplicates = 0;
        foreach (AckedOrder ack in _acks)
        {
            bool there = _orderAt.TryGetValue(ack.Lsn, out var order) && order == (ack.ClientId, ack.ClientSeq)
                && _blockAt.TryGetValue(ack.BlockNo, out var block) && block.Hash == ack.BlockHash;
            if (!there)
            {
                lost++;
            }
            if (_copies.GetValueOrDefault((ack.ClientId, ack.ClientSeq)) > 1)
            {
                duplicates++;
            }
        }
        long split = _acks.GroupBy(a => a.BlockNo).Count(g => g.Select(a => a.BlockHash).Distinct().Skip(1).Any());
        return new AuditResult(lost, duplicates, split, Unreadable);
    }

    /// <summary>The epoch of a block a receipt names, as the last <see cref="Read"/> found it (null if it did not).</summary>
    public ulong? EpochOf(ulong blockNo) => _blockAt.TryGetValue(blockNo, out var block) ? block.Epoch : null;

    /// <summary>
    /// Audits <paramref name="acks"/> against the journal in <paramref name="directory"/>, read whole:
    /// again every 50 ms until it holds the last receipt's LSN (the engine commits in the
    /// background) or <paramref name="wait"/> (default <see cref="DefaultWait"/>) has passed.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">There is no journal there.</exception>
    /// <exception cref="JournalCorruptException">FASTER could not recover its commit.</exception>
    public static async Task<AuditResult> CheckAsync(string directory, IReadOnlyCollection<AckedOrder> acks, TimeSpan? wait = null)
    {
        var audit = new JournalAudit(acks);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            using (JournalReader reader = JournalReader.Open(directory))
            {
                audit.Read(reader);
            }
            if (audit.LastLsnRead >= audit.NeededLsn || audit.Unreadable is not null || clock.Elapsed > (wait ?? DefaultWait))
            {
                return audit.Judge();
            }
            await Task.Delay(50).ConfigureAwait(false);
        }
    }
}
