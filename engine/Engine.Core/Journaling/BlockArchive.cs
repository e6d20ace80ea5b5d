using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;

namespace Engine.Core.Journaling;

/// <summary>
/// The blocks compaction took out of the live journal, kept as our own files (not FASTER's segments),
/// so that the chain from genesis can still be verified, dumped and audited after the journal's base
/// moved: <c>archive/blocks-FIRST-LAST.chain</c> (block numbers in 20 digits, so names sort as blocks do).
/// </summary>
/// <remarks>
/// <para><b>A file</b> (little-endian):</para>
/// <code>
///  0 u8[8] magic "ENGARCH1"   8 u32 version = 1   12 u32 reserved = 0
/// 16 entries: u32 length, then the block exactly as journaled (header, records, its SHA-256)
///    trailer: u64 first block, u64 last block, u64 blocks, then u8[32] SHA-256 of everything before it
/// </code>
/// <para>Written to a temporary name, flushed to disk and renamed (as <see cref="DurableFile"/>), at
/// most <see cref="MaxFileBytes"/> each: a crash leaves whole files or none, and compaction writes the
/// same range again. The blocks inside are chained by their own hashes; the trailer's digest only
/// tells a damaged file from a forged one sooner. Readers verify the digest before trusting a byte.</para>
/// </remarks>
public sealed class BlockArchive
{
    public const string DirectoryName = "archive";
    public const string Extension = ".chain";
    private const string Prefix = "blocks-";
    private const int TrailerBytes = 8 + 8 + 8 + 32;
    private const int HeaderBytes = 16;
    private static ReadOnlySpan<byte> Magic => "ENGARCH1"u8;

    /// <summary>A file is closed once it holds this much; the next block starts a new one.</summary>
    public const long MaxFileBytes = 256L << 20;

    /// <summary>The largest entry a reader takes (a block is far smaller: FASTER's page bounds it).</summary>
    private const int MaxEntryBytes = 1 << 30;

    public BlockArchive(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Directory = directory;
    }

    /// <summary>The archive of the journal in <paramref name="journalDirectory"/> (its <see cref="DirectoryName"/> subdirectory).</summary>
    public static BlockArchive Of(string journalDirectory) => new(Path.Combine(journalDirectory, DirectoryName));

    public string Directory { get; }

    /// <summary>The files present, by first block (a name that is not an archive file's is left alone).</summary>
    public IReadOnlyList<(ulong First, ulong Last, string Path)> Files()
    {
        var found = new List<(ulong First, ulong Last, string Path)>();
        if (!System.IO.Directory.Exists(Directory))
        {
            return found;
        }
        foreach (string path in System.IO.Directory.EnumerateFiles(Directory, Prefix + "*" + Extension))
        {
            string name = System.IO.Path.GetFileName(path);
            if (name.Length == Prefix.Length + 20 + 1 + 20 + Extension.Length
                && ulong.TryParse(name.AsSpan(Prefix.Length, 20), NumberStyles.None, CultureInfo.InvariantCulture, out ulong first)
                && ulong.TryParse(name.AsSpan(Prefix.Length + 21, 20), NumberStyles.None, CultureInfo.InvariantCulture, out ulong last) && last >= first)
            {
                found.Add((first, last, path));
            }
        }
        found.Sort((a, b) => a.First.CompareTo(b.First));
        return found;
    }

    /// <summary>The last block archived, or null when the archive is empty.</summary>
    public ulong? LastBlock => Files() is { Count: > 0 } files ? files[^1].Last : null;

    /// <summary>
    /// Writes the blocks <paramref name="cursor"/> gives (in chain order) from block <paramref name="fromBlockNo"/>
    /// up to but not including block <paramref name="untilBlockNo"/>, into new files; returns the blocks and
    /// bytes written. The cursor is released before each file write (its entries are copied first): no
    /// journal epoch is held across I/O.
    /// </summary>
    public (long Blocks, long Bytes) Write(IEntryCursor cursor, ulong fromBlockNo, ulong untilBlockNo)
    {
        ArgumentNullException.ThrowIfNull(cursor);
        using var writer = new RangeWriter(this, fromBlockNo, untilBlockNo, cursor.Release);
        while (cursor.TryNext(out ReadOnlySpan<byte> entry, out _, out _) && writer.Add(entry))
        {
        }
        cursor.Release();
        return writer.Complete();
    }

    /// <summary>
    /// As <see cref="Write(IEntryCursor, ulong, ulong)"/>, for blocks a <see cref="JournalReader"/> gives
    /// (a journal set aside: its archive, then its live blocks); <paramref name="cancel"/> ends it early,
    /// the blocks written so far kept in whole files.
    /// </summary>
    public (long Blocks, long Bytes) Write(JournalReader reader, ulong fromBlockNo, ulong untilBlockNo, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(reader);
        using var writer = new RangeWriter(this, fromBlockNo, untilBlockNo, beforeIo: null);
        reader.Scan((entry, _) => !cancel.IsCancellationRequested && writer.Add(entry));
        return writer.Complete();
    }

    /// <summary>Blocks in chain order into new files, from one block up to (not including) another; a file is closed at <see cref="MaxFileBytes"/>.</summary>
    private sealed class RangeWriter(BlockArchive archive, ulong fromBlockNo, ulong untilBlockNo, Action? beforeIo) : IDisposable
    {
        private FileWriter? _file;
        private long _blocks;
        private long _bytes;

        /// <summary>Takes one entry; false once the range is done.</summary>
        public bool Add(ReadOnlySpan<byte> entry)
        {
            if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is { } shape)
            {
                throw new InvalidDataException($"an entry that is not a block on the way to block {untilBlockNo}: {shape}");
            }
            if (header.BlockNo < fromBlockNo)
            {
                return true;
            }
            if (header.BlockNo >= untilBlockNo)
            {
                return false;
            }
            if (_file is null)
            {
                System.IO.Directory.CreateDirectory(archive.Directory);
                _file = new FileWriter(archive.Directory, header.BlockNo);
            }
            _file.Add(entry, header.BlockNo);
            _blocks++;
            _bytes += entry.Length;
            if (_file.Pending >= (4 << 20))
            {
                beforeIo?.Invoke();
                _file.Drain();
            }
            if (_file.Length >= MaxFileBytes)
            {
                beforeIo?.Invoke();
                _file.Close();
                _file = null;
            }
            return true;
        }

        /// <summary>Closes the last file (the entries are copied: nothing of the source is held).</summary>
        public (long Blocks, long Bytes) Complete()
        {
            _file?.Close();
            _file = null;
            return (_blocks, _bytes);
        }

        /// <summary>A file not completed (a failure on the way) is deleted.</summary>
        public void Dispose() => _file?.Abandon();
    }

    /// <summary>
    /// Visits the archived blocks in chain order, file by file, each file's digest checked before any
    /// of its blocks is visited, until <paramref name="visit"/> returns false; returns false then too.
    /// </summary>
    /// <exception cref="InvalidDataException">A file is damaged, is not an archive file, or does not hold what its name says.</exception>
    public bool Scan(Func<ReadOnlyMemory<byte>, bool> visit)
    {
        ArgumentNullException.ThrowIfNull(visit);
        Span<byte> digest = stackalloc byte[32];
        foreach ((ulong first, ulong last, string path) in Files())
        {
            byte[] content = File.ReadAllBytes(path);
            if (content.Length < HeaderBytes + TrailerBytes || !content.AsSpan(0, 8).SequenceEqual(Magic) || BinaryPrimitives.ReadUInt32LittleEndian(content.AsSpan(8)) != 1)
            {
                throw new InvalidDataException($"{path} is not an archive file of version 1");
            }
            SHA256.HashData(content.AsSpan(0, content.Length - 32), digest);
            if (!digest.SequenceEqual(content.AsSpan(content.Length - 32)))
            {
                throw new InvalidDataException($"{path}: its SHA-256 does not match its bytes: damaged");
            }
            ReadOnlySpan<byte> trailer = content.AsSpan(content.Length - TrailerBytes);
            ulong statedFirst = BinaryPrimitives.ReadUInt64LittleEndian(trailer);
            ulong statedLast = BinaryPrimitives.ReadUInt64LittleEndian(trailer[8..]);
            ulong count = BinaryPrimitives.ReadUInt64LittleEndian(trailer[16..]);
            if (statedFirst != first || statedLast != last || count != last - first + 1)
            {
                throw new InvalidDataException($"{path} holds blocks {statedFirst}..{statedLast} ({count}), not what its name says");
            }
            int at = HeaderBytes;
            int end = content.Length - TrailerBytes;
            ulong expected = first;
            while (at < end)
            {
                int length = end - at < 4 ? -1 : BinaryPrimitives.ReadInt32LittleEndian(content.AsSpan(at));
                if (length <= 0 || length > MaxEntryBytes || length > end - at - 4)
                {
                    throw new InvalidDataException($"{path}: an entry of {length} bytes at {at}");
                }
                ReadOnlyMemory<byte> block = content.AsMemory(at + 4, length);
                string? shape = BlockFormat.TryReadHeader(block.Span, out BlockHeader header, acceptVersion1: true);
                if (shape is not null || header.BlockNo != expected)
                {
                    throw new InvalidDataException($"{path}: block {expected} expected at {at}: {shape ?? $"block {header.BlockNo}"}");
                }
                if (!visit(block))
                {
                    return false;
                }
                expected++;
                at += 4 + length;
            }
            if (expected != last + 1)
            {
                throw new InvalidDataException($"{path} ends at block {expected - 1}, its trailer says {last}");
            }
        }
        return true;
    }

    /// <summary>One archive file being written: entries buffered, then appended to a temporary file, renamed when closed.</summary>
    private sealed class FileWriter : IDisposable
    {
        private readonly string _directory;
        private readonly ulong _first;
        private readonly string _temporary;
        private readonly FileStream _stream;
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly MemoryStream _pending = new();
        private ulong _last;
        private ulong _count;

        public FileWriter(string directory, ulong first)
        {
            _directory = directory;
            _first = first;
            _temporary = Path.Combine(directory, $"{Prefix}{first:D20}{Extension}{DurableFile.TemporarySuffix}");
            _stream = new FileStream(_temporary, FileMode.Create, FileAccess.Write, FileShare.None);
            Span<byte> header = stackalloc byte[HeaderBytes];
            Magic.CopyTo(header);
            BinaryPrimitives.WriteUInt32LittleEndian(header[8..], 1);
            BinaryPrimitives.WriteUInt32LittleEndian(header[12..], 0);
            _pending.Write(header);
        }

        public long Pending => _pending.Length;

        public long Length => _stream.Length + _pending.Length;

        public void Add(ReadOnlySpan<byte> entry, ulong blockNo)
        {
            Span<byte> length = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(length, entry.Length);
            _pending.Write(length);
            _pending.Write(entry);
            _last = blockNo;
            _count++;
        }

        public void Drain()
        {
            ReadOnlySpan<byte> bytes = _pending.GetBuffer().AsSpan(0, (int)_pending.Length);
            _hash.AppendData(bytes);
            _stream.Write(bytes);
            _pending.SetLength(0);
        }

        public void Close()
        {
            Span<byte> trailer = stackalloc byte[TrailerBytes - 32];
            BinaryPrimitives.WriteUInt64LittleEndian(trailer, _first);
            BinaryPrimitives.WriteUInt64LittleEndian(trailer[8..], _last);
            BinaryPrimitives.WriteUInt64LittleEndian(trailer[16..], _count);
            _pending.Write(trailer);
            Drain();
            _stream.Write(_hash.GetHashAndReset());
            _stream.Flush(flushToDisk: true);
            Dispose();
            File.Move(_temporary, Path.Combine(_directory, $"{Prefix}{_first:D20}-{_last:D20}{Extension}"), overwrite: true);
        }

        public void Abandon()
        {
            Dispose();
            File.Delete(_temporary);
        }

        public void Dispose()
        {
            _stream.Dispose();
            _hash.Dispose();
            _pending.Dispose();
        }
    }
}
