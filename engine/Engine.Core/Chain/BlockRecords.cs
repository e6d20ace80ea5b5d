using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Engine.Protocol;

namespace Engine.Core.Chain;

/// <summary>
/// The one way to walk a block's records: over the bytes of one entry (header, body, hash), each
/// record in order with its index, LSN, kind and 64 bytes. Nothing is copied or allocated; the
/// records are spans into the entry.
/// </summary>
/// <remarks>
/// <para>Bounds-checked by construction: the header is read by <see cref="BlockFormat.TryReadHeader"/>
/// (or, with <see cref="Of"/>, checked against the entry it was read from), so the body holds exactly
/// <see cref="BlockHeader.Count"/> whole records and no slice can fall outside the entry, whatever
/// the bytes. Each record is then checked as the verifier always did: its LSN follows the one before
/// it (the first is the header's), and in format version 2 its kind is one this reader knows
/// (<see cref="LedgerRecord.IsKnown"/>): a kind it does not know is refused, never skipped. What is
/// wrong is said in words, as a fault (<see cref="TryMoveNext"/>) or an
/// <see cref="InvalidDataException"/> (<see cref="MoveNext"/>, <c>foreach</c>), never an
/// <see cref="IndexOutOfRangeException"/>.</para>
/// <para>Not checked here: the block's hash and its link to the chain (<see cref="ChainVerifier"/>,
/// which walks its records with this reader too).</para>
/// <para>Records are 64 fixed bytes (<see cref="LedgerRecord"/>): an LSN, a kind and the kind's
/// payload; a reader dispatches on <see cref="BlockRecord.Kind"/>. Every known kind is a
/// transaction (an order request or an admin transaction), read with <see cref="BlockRecord.Read"/>.</para>
/// </remarks>
public ref struct BlockRecords
{
    private readonly ReadOnlySpan<byte> _entry;
    private readonly ReadOnlySpan<byte> _body;
    private readonly BlockHeader _header;
    private int _next;
    private BlockRecord _current;

    // Once a record is refused, the reader stays at it: every later call says the same.
    private string? _fault;

    private BlockRecords(ReadOnlySpan<byte> entry, scoped in BlockHeader header)
    {
        _entry = entry;
        _header = header;
        _body = BlockFormat.Body(entry, in header);
    }

    /// <summary>
    /// Reads the header of <paramref name="entry"/> (<see cref="BlockFormat.TryReadHeader"/>: its
    /// shape, not its hash) and opens its records; null, or what is wrong with the entry.
    /// </summary>
    /// <param name="entry">The whole entry: header, body and hash.</param>
    /// <param name="records">Its records (none when the entry is refused).</param>
    /// <param name="acceptVersion1">Read a version 1 block too (audit tools); the engine itself never does.</param>
    public static string? TryOpen(ReadOnlySpan<byte> entry, out BlockRecords records, bool acceptVersion1 = false)
    {
        string? shape = BlockFormat.TryReadHeader(entry, out BlockHeader header, acceptVersion1);
        records = shape is null ? new BlockRecords(entry, in header) : default;
        return shape;
    }

    /// <summary>As <see cref="TryOpen"/>, for entries that were verified before (a journal opened by the engine).</summary>
    /// <exception cref="InvalidDataException">The entry is not a block; the message says why.</exception>
    public static BlockRecords Open(ReadOnlySpan<byte> entry, bool acceptVersion1 = false)
    {
        string? shape = TryOpen(entry, out BlockRecords records, acceptVersion1);
        if (shape is not null)
        {
            ThrowNotABlock(shape);
        }
        return records;
    }

    /// <summary>
    /// The records of <paramref name="entry"/>, whose header the caller has already read from it
    /// (<see cref="BlockFormat.TryReadHeader"/>, <see cref="ChainVerifier.Check"/>): not read twice.
    /// </summary>
    /// <exception cref="ArgumentException">The header does not describe this entry's sizes (it was read from another entry, or not read at all).</exception>
    public static BlockRecords Of(ReadOnlySpan<byte> entry, scoped in BlockHeader header)
    {
        if (header.Count < 0 || header.HeaderBytes < 0 || (long)header.Count * LedgerRecord.Bytes != header.BodyBytes
            || (long)header.HeaderBytes + header.BodyBytes + BlockFormat.HashBytes != entry.Length)
        {
            ThrowHeaderOfAnotherEntry(entry.Length, in header);
        }
        return new BlockRecords(entry, in header);
    }

    /// <summary>The block's header.</summary>
    public readonly BlockHeader Header => _header;

    /// <summary>The hash stored after the body (the block's hash, if the block verified).</summary>
    public readonly Hash32 StoredHash => BlockFormat.StoredHash(_entry, in _header);

    /// <summary>The record <see cref="MoveNext"/> or <see cref="TryMoveNext"/> moved to.</summary>
    public readonly BlockRecord Current => _current;

    /// <summary>For <c>foreach</c>: the records from here on.</summary>
    public readonly BlockRecords GetEnumerator() => this;

    /// <summary>
    /// Moves to the next record: true, with it in <see cref="Current"/>; false at the end of the
    /// block (<paramref name="fault"/> null) or at a record that is refused (<paramref name="fault"/>
    /// says which and why, relative to the block; the reader stays there).
    /// </summary>
    public bool TryMoveNext(out string? fault)
    {
        fault = _fault;
        if (fault is not null || _next == _header.Count)
        {
            _current = default;
            return false;
        }
        ReadOnlySpan<byte> record = _body.Slice(_next * LedgerRecord.Bytes, LedgerRecord.Bytes);
        ulong lsn = LedgerRecord.LsnOf(record);
        RecordKind kind = LedgerRecord.KindOf(record, _header.Version);
        if (lsn != _header.FirstLsn + (ulong)_next
            || (_header.Version != BlockFormat.Version1 && !LedgerRecord.IsKnown(kind)))
        {
            // A version 1 record's kind is its order's message type, which no reader of version 1
            // ever refused: only its LSN is checked there, as the verifier always did.
            fault = _fault = Refuse(_next, lsn, kind);
            _current = default;
            return false;
        }
        _current = new BlockRecord(record, _next, lsn, kind, _header.Version);
        _next++;
        return true;
    }

    /// <summary>Moves to the next record; false at the end of the block.</summary>
    /// <exception cref="InvalidDataException">The record is refused; the message names the block, the record and why.</exception>
    public bool MoveNext()
    {
        if (TryMoveNext(out string? fault))
        {
            return true;
        }
        if (fault is not null)
        {
            ThrowRefused(_header.BlockNo, fault);
        }
        return false;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private readonly string Refuse(int index, ulong lsn, RecordKind kind)
    {
        ulong expected = _header.FirstLsn + (ulong)index;
        return lsn != expected
            ? $"record {index} has LSN {lsn}, expected {expected}"
            : $"record {index} (LSN {lsn}) has {LedgerRecord.Unknown(kind)}";
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowNotABlock(string shape) => throw new InvalidDataException($"not a block: {shape}");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowRefused(ulong blockNo, string fault) => throw new InvalidDataException($"block {blockNo}: {fault}");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowHeaderOfAnotherEntry(int entryLength, in BlockHeader header) =>
        throw new ArgumentException($"a header of {header.Count} records in {header.HeaderBytes} + {header.BodyBytes} bytes does not describe an entry of {entryLength} bytes: "
            + "it was not read from this entry", nameof(header));
}

/// <summary>One record of a block, as <see cref="BlockRecords"/> yields it; valid as long as the entry's bytes are.</summary>
public readonly ref struct BlockRecord
{
    private readonly ushort _formatVersion;

    internal BlockRecord(ReadOnlySpan<byte> bytes, int index, ulong lsn, RecordKind kind, ushort formatVersion)
    {
        Bytes = bytes;
        Index = index;
        Lsn = lsn;
        Kind = kind;
        _formatVersion = formatVersion;
    }

    /// <summary>Its position in the block (0 first).</summary>
    public int Index { get; }

    public ulong Lsn { get; }

    /// <summary>What the record is (in format version 1, the order's message type): what a reader dispatches on.</summary>
    public RecordKind Kind { get; }

    /// <summary>Its 64 bytes, laid out as its block's format version says (<see cref="LedgerRecord"/>).</summary>
    public ReadOnlySpan<byte> Bytes { get; }

    /// <summary>Reads the transaction the record holds: an order request or an admin transaction (<see cref="Transaction.Kind"/>).</summary>
    /// <exception cref="InvalidDataException">The record is of a kind this version does not know.</exception>
    public void Read(out Transaction tx) => LedgerRecord.Read(Bytes, _formatVersion, out tx);
}
