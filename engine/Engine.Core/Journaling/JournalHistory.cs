
namespace Engine.Core.Journaling;

/// <summary>
/// The history a node keeps when its journal is replaced by one that starts at a snapshot's block
/// (a backup installing its primary's snapshot): the blocks before that block that the journal set
/// aside holds are the same chain's (a hash chain: if it holds that block with its hash, it holds
/// every block before it as the primary had them), so they go into the new journal's archive. Without
/// this, a pair whose nodes each set their journal aside once (two divergences) held the orders
/// before the snapshot in no live journal: found by the 300-round drill's final audit.
/// </summary>
public static class JournalHistory
{
    /// <summary>
    /// Copies into <paramref name="into"/> the blocks before <paramref name="anchor"/> that the journal
    /// at <paramref name="asideDirectory"/> holds (its archive, then its live blocks), when it holds the
    /// anchor's block with the anchor's hash; returns what was carried, or why nothing was.
    /// </summary>
    /// <exception cref="IOException">Reading or writing failed.</exception>
    /// <exception cref="InvalidDataException">The journal or its archive is damaged.</exception>
    public static string Carry(string asideDirectory, JournalAnchor anchor, BlockArchive into, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(into);
        if (!Directory.Exists(asideDirectory) || !File.Exists(Path.Combine(asideDirectory, JournalGeometry.FileName)))
        {
            return $"nothing to carry from {asideDirectory}: no journal there";
        }
        using JournalReader reader = JournalReader.Open(asideDirectory);
        Protocol.Hash32? held = null;
        ulong first = ulong.MaxValue;
        reader.Scan((entry, _) =>
        {
            if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is not null)
            {
                return false;
            }
            first = Math.Min(first, header.BlockNo);
            if (header.BlockNo == anchor.BlockNo)
            {
                held = BlockFormat.StoredHash(entry, in header);
                return false;
            }
            return header.BlockNo < anchor.BlockNo;
        });
        if (held != anchor.Hash)
        {
            return held is null
                ? $"the journal set aside at {asideDirectory} does not reach block {anchor.BlockNo}: its blocks are not known to be the chain's, not carried"
                : $"the journal set aside at {asideDirectory} holds another block {anchor.BlockNo}: not the chain's, not carried";
        }
        ulong from = into.LastBlock is { } last ? last + 1 : BlockFormat.GenesisBlockNo;
        (long blocks, long bytes) = into.Write(reader, from, anchor.BlockNo, cancel);
        return cancel.IsCancellationRequested
            ? $"stopped keeping the history at {blocks:N0} blocks (the journal is being replaced again)"
            : $"kept the history: blocks {Math.Max(from, first)} to {anchor.BlockNo - 1} ({blocks:N0} blocks, {bytes:N0} bytes) from the journal set aside, in the archive";
    }
}
