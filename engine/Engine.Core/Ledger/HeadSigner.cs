using System.Buffers.Binary;
using Engine.Core.Journaling;
using Engine.Protocol;

namespace Engine.Core.Ledger;

/// <summary>What a node needs of the cluster's ledger key: its public key, and a way to sign a head's bytes.</summary>
/// <param name="PublicKey">The Ed25519 public key (the roster's <c>ledger_public_key</c>).</param>
/// <param name="Sign">Signs <see cref="SignedHead.SignedPart()"/>'s bytes; returns the 64-byte signature.</param>
public sealed record HeadSigning(byte[] PublicKey, Func<byte[], byte[]> Sign);

/// <summary>
/// Signs the ledger's head on the primary, Certificate-Transparency style: a thread of its own keeps
/// the RFC 6962 tree of every block hash from genesis as a compact range (at most 64 hashes), reads
/// the blocks as they are committed, and every <see cref="JournalFollower.Interval"/> in which blocks arrived signs
/// the tree's root with the ledger key (<see cref="SignedHead"/>) and keeps it in
/// <c>DIR/ledger-head</c> (replaced atomically) and in <see cref="Latest"/>.
/// </summary>
/// <remarks>
/// <para><b>Cost.</b> One leaf hash per block (~0.1 µs) and one Ed25519 signature per interval
/// (~50 µs): nothing per order, and never on the order path.</para>
/// <para><b>Start.</b> From <c>ledger-head</c> when it is this chain's: its last block's hash (kept
/// beside the head) must be the journal's hash of that block, which by the hash chain vouches for
/// every block before it; a file left by another history (a node whose journal was cut back to its
/// new primary's) fails that and is not used. Otherwise from genesis: the live journal when it starts
/// there, else the archive then the journal; a journal whose blocks before its base are gone gets no
/// heads until a snapshot carries the range (a known limit, logged once).</para>
/// <para>The file holds only the newest head: older heads are what their holders kept, and a proof
/// that a later head extends an earlier one is computed from the block hashes
/// (<see cref="Merkle.ConsistencyProof"/>).</para>
/// <para><b>Paths.</b> Every node of the tree goes to <see cref="BlockHashTree"/>'s file too (64
/// bytes a block, two positional writes), so a block's path to a head is a few reads
/// (<see cref="Tree"/>): a node answers its clients' proof requests without a pass over the ledger.</para>
/// </remarks>
public sealed class HeadSigner : JournalFollower
{
    /// <summary>The newest head and the range it came from, in the journal's directory.</summary>
    public const string FileName = "ledger-head";

    private const int MaxSubtrees = 64;
    private const int MaxFileBytes = SignedHead.Bytes + Hash32.Bytes + 1 + MaxSubtrees * Hash32.Bytes + 4;

    private readonly HeadSigning _signing;
    private readonly TimeProvider _clock;
    private readonly BlockHashTree _tree;

    private CompactRange _range;
    private Hash32 _lastBlockHash;
    private long _readFrom;
    private bool _started;
    private bool _disabled;
    private SignedHead? _latest;

    /// <param name="journal">The journal whose blocks the heads cover.</param>
    /// <param name="signing">The ledger key.</param>
    /// <param name="interval">How often it signs, when blocks arrived (zero: no thread; the owner calls <see cref="Poll"/>).</param>
    /// <param name="clock">The heads' timestamps.</param>
    /// <param name="log">Where it says where it started, and a fault.</param>
    public HeadSigner(IJournal journal, HeadSigning signing, TimeSpan interval, TimeProvider? clock = null, Action<string>? log = null)
        : base(journal, interval, log, "signed heads")
    {
        ArgumentNullException.ThrowIfNull(signing);
        _signing = signing;
        _clock = clock ?? TimeProvider.System;
        _tree = BlockHashTree.Open(journal.Settings.Directory);
        Start();
    }

    /// <summary>The newest head signed (or read back at start); null before the first.</summary>
    public SignedHead? Latest => Volatile.Read(ref _latest);

    /// <summary>
    /// Every node of the tree the heads sign: the path of a block to <see cref="Latest"/> (any head up
    /// to it) is read from here. Holds at least <see cref="Latest"/>'s tree once that is set.
    /// </summary>
    public BlockHashTree Tree => _tree;

    /// <summary>The ledger's public key, as the heads are signed with it.</summary>
    public ReadOnlySpan<byte> PublicKey => _signing.PublicKey;

    /// <summary>Path of the head file of the journal in <paramref name="directory"/>.</summary>
    public static string PathIn(string directory) => Path.Combine(directory, FileName);

    /// <summary>Reads the blocks committed since the last call and signs a head if there are new ones; returns the blocks read.</summary>
    public override int Poll()
    {
        if (!_started)
        {
            FindStart();
            _started = true;
        }
        if (_disabled)
        {
            return 0;
        }
        int read = 0;
        Cursor ??= Journal.OpenFollower(_readFrom);
        try
        {
            while (Cursor.TryNext(out ReadOnlySpan<byte> entry, out _, out long next))
            {
                if (BlockFormat.TryReadHeader(entry, out BlockHeader header) is { } wrong)
                {
                    throw new InvalidDataException($"signed heads: a block the journal holds does not read: {wrong}");
                }
                _readFrom = next;
                if (header.BlockNo < (ulong)_range.Size)
                {
                    continue; // before where the range is (the scan began at an indexed address before it)
                }
                if (header.BlockNo != (ulong)_range.Size)
                {
                    throw new InvalidDataException($"signed heads: block {header.BlockNo} where {_range.Size} was expected");
                }
                Add(BlockFormat.StoredHash(entry, in header));
                read++;
            }
        }
        finally
        {
            Cursor.Release();
        }
        if (_range.Size > (Latest?.TreeSize ?? 0))
        {
            SignAndSave();
        }
        return read;
    }

    private void Add(in Hash32 blockHash)
    {
        Hash32 leaf = SignedHead.BlockLeaf(in blockHash);
        _range.Append(in leaf);
        _tree.Append(in leaf);
        _lastBlockHash = blockHash;
    }

    private void SignAndSave()
    {
        ClusterId cluster = Journal.Head.ClusterId;
        long now = Journaling.Journal.UnixNanos(_clock);
        Hash32 root = _range.Root();
        byte[] signature = _signing.Sign(SignedHead.SignedPart(cluster, _range.Size, now, in root));
        var head = new SignedHead(cluster, _range.Size, now, root, signature);
        Hash32[] subtrees = _range.Subtrees();
        var file = new byte[SignedHead.Bytes + Hash32.Bytes + 1 + subtrees.Length * Hash32.Bytes + 4];
        head.ToBytes().CopyTo(file, 0);
        ((ReadOnlySpan<byte>)_lastBlockHash).CopyTo(file.AsSpan(SignedHead.Bytes));
        file[SignedHead.Bytes + Hash32.Bytes] = (byte)subtrees.Length;
        for (int i = 0; i < subtrees.Length; i++)
        {
            ((ReadOnlySpan<byte>)subtrees[i]).CopyTo(file.AsSpan(SignedHead.Bytes + Hash32.Bytes + 1 + i * Hash32.Bytes));
        }
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(file.Length - 4), Crc32C.Compute(file.AsSpan(0, file.Length - 4)));
        // No fsync: a head file lost or torn by a power cut fails its checksum or its last block's
        // hash, and the tree is computed again from the journal; an fsync a second on the journal's
        // disk would cost the order path more than that.
        DurableFile.Replace(PathIn(Journal.Settings.Directory), file, flushToDisk: false);
        Volatile.Write(ref _latest, head);
    }

    /// <summary>
    /// Reads the head file of <paramref name="directory"/>: the newest head, the hash of its last block
    /// and the range it came from; null and why when there is none or it is damaged.
    /// </summary>
    public static (SignedHead Head, Hash32 LastBlockHash, CompactRange Range)? TryLoad(string directory, out string? wrong)
    {
        string path = PathIn(directory);
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            wrong = "no signed head yet";
            return null;
        }
        if (info.Length > MaxFileBytes || info.Length < SignedHead.Bytes + Hash32.Bytes + 1 + 4)
        {
            wrong = $"{path}: {info.Length:N0} bytes is not a head file";
            return null;
        }
        byte[] file = File.ReadAllBytes(path);
        if (BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(file.Length - 4)) != Crc32C.Compute(file.AsSpan(0, file.Length - 4)))
        {
            wrong = $"{path}: damaged (checksum)";
            return null;
        }
        if (SignedHead.TryRead(file.AsSpan(0, SignedHead.Bytes), out wrong) is not { } head)
        {
            wrong = $"{path}: {wrong}";
            return null;
        }
        int count = file[SignedHead.Bytes + Hash32.Bytes];
        if (file.Length != SignedHead.Bytes + Hash32.Bytes + 1 + count * Hash32.Bytes + 4 || count != System.Numerics.BitOperations.PopCount((ulong)head.TreeSize))
        {
            wrong = $"{path}: the range does not fit a tree of {head.TreeSize} blocks";
            return null;
        }
        var subtrees = new Hash32[count];
        for (int i = 0; i < count; i++)
        {
            subtrees[i] = Hash32.From(file.AsSpan(SignedHead.Bytes + Hash32.Bytes + 1 + i * Hash32.Bytes));
        }
        var range = CompactRange.Restore(head.TreeSize, subtrees);
        if (range.Root() != head.Root)
        {
            wrong = $"{path}: the range's root is not the head's";
            return null;
        }
        return (head, Hash32.From(file.AsSpan(SignedHead.Bytes)), range);
    }

    private void FindStart()
    {
        Journal.Flush(); // what was appended before this node started signing is part of the tree it signs
        string directory = Journal.Settings.Directory;
        if (TryLoad(directory, out string? wrong) is { } saved
            && saved.Head.ClusterId == Journal.Head.ClusterId
            && (ulong)saved.Head.TreeSize - 1 <= Journal.Head.BlockNo
            && Journal.HashOf((ulong)saved.Head.TreeSize - 1) == saved.LastBlockHash
            && (_tree.Continue(saved.Head.TreeSize, saved.Range.Subtrees(), saved.Head.Root) || Refuse("the tree file does not hold its head's tree", out wrong)))
        {
            _range = saved.Range;
            _lastBlockHash = saved.LastBlockHash;
            _readFrom = Journal.LocateFrom((ulong)saved.Head.TreeSize);
            Volatile.Write(ref _latest, saved.Head);
            Log($"signed heads continue after block {saved.Head.TreeSize - 1} ({saved.Head}), every {Interval.TotalMilliseconds:0.#} ms");
            return;
        }
        string why = wrong ?? "the head file is of another history";
        _range = default;
        _tree.Reset();
        ulong liveFrom = Journal.Base?.BlockNo ?? BlockFormat.GenesisBlockNo;
        if (liveFrom != BlockFormat.GenesisBlockNo)
        {
            BlockArchive archive = BlockArchive.Of(directory);
            archive.Scan(block =>
            {
                if (BlockFormat.TryReadHeader(block.Span, out BlockHeader header) is not null || header.BlockNo != (ulong)_range.Size || header.BlockNo >= liveFrom)
                {
                    return false;
                }
                Add(BlockFormat.StoredHash(block.Span, in header));
                return true;
            });
            if ((ulong)_range.Size != liveFrom)
            {
                _disabled = true;
                _tree.Reset();
                Log($"no signed heads: the journal starts at block {liveFrom} and the blocks before it are not all here ({why}); a head covers every block from genesis");
                return;
            }
        }
        _readFrom = Journal.LocateFrom(liveFrom);
        Log($"signed heads start from genesis ({why}), every {Interval.TotalMilliseconds:0.#} ms");
    }

    protected override void Release() => _tree.Dispose();

    private static bool Refuse(string why, out string? wrong)
    {
        wrong = why;
        return false;
    }
}
