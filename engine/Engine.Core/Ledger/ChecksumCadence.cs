namespace Engine.Core.Ledger;

/// <summary>
/// When the state checksum the pair compares is due: after every block whose number is a multiple of
/// <see cref="EveryBlocks"/>, and after the first block sealed in each new window of
/// <see cref="EveryNs"/> nanoseconds. The windows are judged by the blocks' own timestamps (the
/// primary's clock when it sealed them, in every header), never by the clock of the node that
/// applies them: every node that applies the chain picks the same blocks, whatever its rate, clock or
/// lag. By time, the whole-state walk runs about once a window at any rate (at moderate rates a block
/// holds about one order, and a count of blocks alone walked the state every second or so).
/// </summary>
/// <param name="EveryBlocks">A block count (0: not by count).</param>
/// <param name="EveryNs">A window of time, in nanoseconds (0: not by time).</param>
public readonly record struct ChecksumCadence(ulong EveryBlocks, long EveryNs)
{
    /// <summary>No checksums.</summary>
    public static ChecksumCadence Never => default;

    public bool IsOn => EveryBlocks != 0 || EveryNs > 0;

    /// <summary>
    /// Whether the checksum is due after block <paramref name="blockNo"/> sealed at
    /// <paramref name="timestampNs"/>, the block before it at <paramref name="previousTimestampNs"/>
    /// (null when not known: a node that has just started judges that one block by its number alone,
    /// and the primary's checksum for it then finds none to compare with, which is not a mismatch).
    /// </summary>
    public bool IsDue(ulong blockNo, long timestampNs, long? previousTimestampNs) =>
        blockNo != 0 && ((EveryBlocks != 0 && blockNo % EveryBlocks == 0)
            || (EveryNs > 0 && previousTimestampNs is long previous && previous > 0 && timestampNs / EveryNs > previous / EveryNs));

    public override string ToString() => (EveryBlocks, EveryNs) switch
    {
        (0, <= 0) => "never",
        (_, <= 0) => $"every {EveryBlocks:N0} blocks",
        (0, _) => $"every {EveryNs / 1e9:0.###} s",
        _ => $"every {EveryBlocks:N0} blocks and every {EveryNs / 1e9:0.###} s",
    };
}

/// <summary>
/// A <see cref="ChecksumCadence"/> followed block by block by one applier: it remembers the last
/// block's timestamp, so each call judges the next block against the one before it.
/// </summary>
public sealed class ChecksumSchedule(ChecksumCadence cadence)
{
    private ulong _lastBlockNo;
    private long _lastTimestampNs;
    private bool _any;

    public ChecksumCadence Cadence { get; } = cadence;

    /// <summary>Notes block <paramref name="blockNo"/> applied (sealed at <paramref name="timestampNs"/>); true when the checksum is due after it.</summary>
    public bool After(ulong blockNo, long timestampNs)
    {
        long? previous = _any && _lastBlockNo + 1 == blockNo ? _lastTimestampNs : null;
        (_lastBlockNo, _lastTimestampNs, _any) = (blockNo, timestampNs, true);
        return Cadence.IsDue(blockNo, timestampNs, previous);
    }
}
