using System.Buffers.Binary;

namespace Engine.Core.Journaling;

/// <summary>
/// Where blocks are in a journal: the address of every <see cref="Every"/>th block, and of the first
/// block at least <see cref="EveryBytes"/> after the last one indexed, so that finding block N (a
/// snapshot's anchor at start-up, a joining backup's head, a catch-up's start) reads at most
/// <see cref="Every"/> blocks and about <see cref="EveryBytes"/> from the nearest indexed one instead
/// of scanning from genesis (large blocks: 1,024 blocks of 1,000 orders are 64 MB).
/// </summary>
/// <remarks>
/// <para><b>A hint, never trusted.</b> An entry is used only after the block at its address reads
/// with its number (<see cref="LocateFrom"/>); one that does not is dropped, with every later one, and
/// the search falls back to the previous entry (at worst the journal's first block). So a lost,
/// stale, torn or forged index file costs time, never a wrong block: what is found is then checked
/// as anything read from the journal is (its hash, the chain).</para>
/// <para><b>On disk</b> (<see cref="FileName"/>, for <see cref="Journal"/>; the simulated journal
/// keeps it in memory): 16 bytes per entry, block number then address, little-endian, ascending.
/// Entries are appended once the block is committed (never ahead of the journal), not synced (a
/// power loss may lose the last few, which costs a longer search); opening drops entries outside
/// the committed journal and a torn last entry.</para>
/// <para>Thread-safe: the appending thread notes, the committer persists, any thread locates.</para>
/// </remarks>
public sealed class BlockIndex
{
    /// <summary>One block in this many is indexed (at 16 bytes an entry, about 0.016 bytes a block).</summary>
    public const ulong Every = 1024;

    /// <summary>And a block at least this far after the last one indexed (16 bytes per MiB of journal).</summary>
    public const long EveryBytes = 1 << 20;

    public const string FileName = "blocks.idx";

    private const int EntryBytes = 16;

    private readonly object _gate = new();
    private readonly List<(ulong BlockNo, long Address)> _entries = [];
    private readonly string? _path;
    private int _persisted;

    // The last entry's address (read without the lock by Note's cheap test).
    private long _lastAddress;

    // Set when entries that were written were dropped (LocateFrom): the next Persist rewrites the file.
    private bool _dropped;

    private BlockIndex(string? path)
    {
        _path = path;
    }

    /// <summary>An index kept in memory only.</summary>
    public static BlockIndex InMemory() => new(null);

    /// <summary>
    /// The index of the journal in <paramref name="directory"/>, as far as its file goes: the entries
    /// inside the committed journal [<paramref name="begin"/>, <paramref name="committedUntil"/>) that
    /// ascend (the first that does not ends the read). A missing or unreadable file is an empty index.
    /// </summary>
    public static BlockIndex Load(string directory, long begin, long committedUntil)
    {
        var index = new BlockIndex(Path.Combine(directory, FileName));
        byte[] bytes;
        try
        {
            bytes = File.Exists(index._path) ? File.ReadAllBytes(index._path) : [];
        }
        catch (IOException)
        {
            bytes = [];
        }
        for (int at = 0; at + EntryBytes <= bytes.Length; at += EntryBytes)
        {
            ulong blockNo = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at));
            long address = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(at + 8));
            if (address < begin || address >= committedUntil
                || (index._entries.Count > 0 && (blockNo <= index._entries[^1].BlockNo || address <= index._entries[^1].Address)))
            {
                break;
            }
            index._entries.Add((blockNo, address));
            index._lastAddress = address;
        }
        return index;
    }

    /// <summary>Entries held (tests, status).</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Notes where block <paramref name="blockNo"/> is, if it is one of those indexed and after the last entry; cheap for every other block.</summary>
    public void Note(ulong blockNo, long address)
    {
        if (blockNo % Every != 0 && address - Volatile.Read(ref _lastAddress) < EveryBytes)
        {
            return;
        }
        lock (_gate)
        {
            if (_entries.Count == 0 || (blockNo > _entries[^1].BlockNo && address > _entries[^1].Address))
            {
                _entries.Add((blockNo, address));
                Volatile.Write(ref _lastAddress, address);
            }
        }
    }

    /// <summary>Notes the block in <paramref name="entry"/> (a sealed block) at <paramref name="address"/>.</summary>
    public void Note(ReadOnlySpan<byte> entry, long address)
    {
        if (entry.Length >= BlockFormat.BlockNoOffset + 8)
        {
            Note(BinaryPrimitives.ReadUInt64LittleEndian(entry[BlockFormat.BlockNoOffset..]), address);
        }
    }

    /// <summary>
    /// An address from which a scan of the committed journal reaches block <paramref name="blockNo"/>:
    /// the nearest indexed block at or before it whose entry reads with that number, else
    /// <paramref name="begin"/>. Entries that do not read so are dropped.
    /// </summary>
    internal long LocateFrom(ulong blockNo, OpenEntries open, long begin, long committedUntil)
    {
        while (true)
        {
            ulong indexed;
            long address;
            lock (_gate)
            {
                int at = _entries.Count - 1;
                while (at >= 0 && (_entries[at].BlockNo > blockNo || _entries[at].Address >= committedUntil))
                {
                    at--;
                }
                if (at < 0)
                {
                    return begin;
                }
                (indexed, address) = _entries[at];
            }
            if (ReadsAs(open, address, committedUntil, indexed))
            {
                return address;
            }
            lock (_gate)
            {
                int wrong = _entries.FindIndex(e => e.BlockNo == indexed);
                if (wrong >= 0)
                {
                    _entries.RemoveRange(wrong, _entries.Count - wrong);
                    Volatile.Write(ref _lastAddress, _entries.Count > 0 ? _entries[^1].Address : 0);
                    _dropped |= wrong < _persisted;
                    _persisted = Math.Min(_persisted, wrong);
                }
            }
        }
    }

    private static bool ReadsAs(OpenEntries open, long address, long committedUntil, ulong blockNo)
    {
        try
        {
            using IEntryCursor cursor = open(address, committedUntil);
            return cursor.TryNext(out ReadOnlySpan<byte> entry, out long at, out _) && at == address
                && BlockFormat.TryReadHeader(entry, out BlockHeader header) is null && header.BlockNo == blockNo;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return false; // an address that is not an entry's: FASTER may throw on what it reads there
        }
    }

    /// <summary>Drops the entries of blocks before <paramref name="address"/> (compaction moved the journal's begin there); the next persist rewrites the file.</summary>
    public void DropBefore(long address)
    {
        lock (_gate)
        {
            int keep = _entries.FindIndex(e => e.Address >= address);
            int drop = keep < 0 ? _entries.Count : keep;
            if (drop > 0)
            {
                _entries.RemoveRange(0, drop);
                _dropped = true;
                _persisted = Math.Max(0, _persisted - drop);
            }
        }
    }

    /// <summary>Writes the whole index to its file, replacing it (after the journal opened); nothing for an index in memory.</summary>
    public void Rewrite()
    {
        if (_path is null)
        {
            return;
        }
        byte[] bytes;
        lock (_gate)
        {
            bytes = Encode(0, _entries.Count);
            _persisted = _entries.Count;
            _dropped = false;
        }
        DurableFile.Replace(_path, bytes);
    }

    /// <summary>Appends to the file the entries of blocks now committed (below <paramref name="committedUntil"/>) not written yet; from the committer.</summary>
    public void Persist(long committedUntil)
    {
        if (_path is null)
        {
            return;
        }
        byte[] bytes;
        lock (_gate)
        {
            if (_dropped)
            {
                // Rewritten whole rather than appended after entries found wrong.
                bytes = Encode(0, _entries.Count);
                _persisted = _entries.Count;
                _dropped = false;
                DurableFile.Replace(_path, bytes);
                return;
            }
            int until = _persisted;
            while (until < _entries.Count && _entries[until].Address < committedUntil)
            {
                until++;
            }
            if (until == _persisted)
            {
                return;
            }
            bytes = Encode(_persisted, until);
            _persisted = until;
        }
        using var file = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read);
        file.Write(bytes);
    }

    private byte[] Encode(int from, int until)
    {
        byte[] bytes = new byte[(until - from) * EntryBytes];
        for (int i = from; i < until; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan((i - from) * EntryBytes), _entries[i].BlockNo);
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(((i - from) * EntryBytes) + 8), _entries[i].Address);
        }
        return bytes;
    }
}
