using System.Numerics;
using Engine.Protocol;
using Microsoft.Win32.SafeHandles;

namespace Engine.Core.Ledger;

/// <summary>
/// Every node of the RFC 6962 tree of block hashes that the signed heads sign, in a file beside the
/// journal, so that the path from any block to any head is O(log n) reads instead of a pass over
/// the whole ledger: what a node needs to answer a client's proof request while it takes orders.
/// </summary>
/// <remarks>
/// <para><b>Layout.</b> The complete subtrees in in-order ("flat tree") numbering: the node at height
/// h (leaves are 0) covering leaves [k·2^h, (k+1)·2^h) is node 2^(h+1)·k + 2^h − 1, 32 bytes at
/// 32 × that offset. Leaf i is node 2i; a tree of n leaves uses nodes below 2n (64 bytes a block).
/// A node is written once, when its last leaf arrives, and never changes: the file only grows at
/// its end and in holes below it.</para>
/// <para><b>A cache, never trusted alone.</b> Not synced: a power cut may lose or tear its end. The
/// owner (<see cref="HeadSigner"/>) checks it against the root of the head it continues from
/// (<see cref="RootOf"/>) and builds it again from the journal when they differ; a node read for a
/// proof is checked by whoever verifies the proof, against the signed root.</para>
/// <para><b>Threads.</b> One thread appends; any thread reads the paths of trees up to a size that
/// was appended before (positional reads on a shared handle).</para>
/// </remarks>
public sealed class BlockHashTree : IDisposable
{
    public const string FileName = "ledger-tree";

    private readonly SafeFileHandle _file;
    private readonly Hash32[] _edge = new Hash32[64]; // the root of the complete subtree at height h, for each bit h set in Size
    private long _size;

    private BlockHashTree(SafeFileHandle file) => _file = file;

    /// <summary>Opens (or creates) the tree file of the journal in <paramref name="directory"/>; empty until <see cref="Continue"/> or <see cref="Append"/>.</summary>
    public static BlockHashTree Open(string directory) =>
        new(File.OpenHandle(Path.Combine(directory, FileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite));

    /// <summary>Leaves appended (blocks).</summary>
    public long Size => Volatile.Read(ref _size);

    /// <summary>Starts empty: the file is cut to nothing.</summary>
    public void Reset()
    {
        RandomAccess.SetLength(_file, 0);
        Volatile.Write(ref _size, 0);
    }

    /// <summary>
    /// Takes up the tree the file holds as a tree of <paramref name="size"/> leaves whose complete
    /// subtrees' roots are <paramref name="subtrees"/> (largest first, as <see cref="Engine.Ledger.CompactRange.Subtrees"/>
    /// gives them); false (and nothing changed) when the file does not hold that tree: too short, or
    /// its root is not <paramref name="root"/>.
    /// </summary>
    public bool Continue(long size, ReadOnlySpan<Hash32> subtrees, in Hash32 root)
    {
        try
        {
            if (size <= 0 || RandomAccess.GetLength(_file) < (2 * size - 1) * Hash32.Bytes || subtrees.Length != BitOperations.PopCount((ulong)size)
                || SubtreeRoot(0, size) != root)
            {
                return false;
            }
        }
        catch (IOException)
        {
            return false;
        }
        int i = 0;
        for (int height = 63; height >= 0; height--)
        {
            if ((size & (1L << height)) != 0)
            {
                _edge[height] = subtrees[i++];
            }
        }
        Volatile.Write(ref _size, size);
        return true;
    }

    /// <summary>Appends the next leaf (a block's leaf hash) and writes every subtree it completes.</summary>
    public void Append(in Hash32 leafHash)
    {
        long index = _size;
        Write(2 * index, in leafHash);
        Hash32 node = leafHash;
        int height = 0;
        while ((index & (1L << height)) != 0)
        {
            node = Merkle.NodeHash(in _edge[height], in node);
            height++;
            Write(NodeIndex(height, index >> height), in node);
        }
        _edge[height] = node;
        Volatile.Write(ref _size, index + 1);
    }

    /// <summary>The root of the tree of the first <paramref name="size"/> leaves (at most <see cref="Size"/>).</summary>
    public Hash32 RootOf(long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, Size);
        return SubtreeRoot(0, size);
    }

    /// <summary>
    /// The RFC 6962 inclusion path of leaf <paramref name="index"/> in the tree of the first
    /// <paramref name="size"/> leaves (at most <see cref="Size"/>): the same as
    /// <see cref="Merkle.InclusionPath"/> over those leaves, from O(log² n) reads of nodes.
    /// </summary>
    public Hash32[] InclusionPath(long index, long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, size);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, Size);
        var path = new List<Hash32>();
        AddPath(index, 0, size, path);
        return [.. path];
    }

    // PATH(m, D[lo, lo + n)) of RFC 6962 2.1.1: the sibling nearest the leaf first.
    private void AddPath(long m, long lo, long n, List<Hash32> path)
    {
        if (n == 1)
        {
            return;
        }
        long k = Merkle.Split(n);
        if (m < k)
        {
            AddPath(m, lo, k, path);
            path.Add(SubtreeRoot(lo + k, n - k));
        }
        else
        {
            AddPath(m - k, lo + k, n - k, path);
            path.Add(SubtreeRoot(lo, k));
        }
    }

    // MTH(D[lo, lo + n)): one read for a complete subtree (lo is a multiple of n, a power of two: every
    // subtree the recursion asks for starts at a multiple of its largest power of two), else split.
    private Hash32 SubtreeRoot(long lo, long n)
    {
        if (BitOperations.IsPow2(n))
        {
            int height = BitOperations.Log2((ulong)n);
            return Read(NodeIndex(height, lo >> height));
        }
        long k = Merkle.Split(n);
        return Merkle.NodeHash(SubtreeRoot(lo, k), SubtreeRoot(lo + k, n - k));
    }

    private static long NodeIndex(int height, long k) => (k << (height + 1)) + (1L << height) - 1;

    private void Write(long node, in Hash32 hash) => RandomAccess.Write(_file, hash, node * Hash32.Bytes);

    private Hash32 Read(long node)
    {
        Span<byte> bytes = stackalloc byte[Hash32.Bytes];
        if (RandomAccess.Read(_file, bytes, node * Hash32.Bytes) != Hash32.Bytes)
        {
            throw new IOException($"{FileName}: node {node} is past the file's end");
        }
        return Hash32.From(bytes);
    }

    public void Dispose() => _file.Dispose();
}
