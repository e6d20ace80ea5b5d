using System.Numerics;
using System.Security.Cryptography;
using Engine.Protocol;

namespace Engine.Ledger;

/// <summary>
/// Merkle trees as RFC 6962 / RFC 9162 define them (Certificate Transparency): leaf hash
/// SHA-256(0x00 ‖ data), node hash SHA-256(0x01 ‖ left ‖ right), the tree of n leaves split at the
/// largest power of two below n; inclusion paths (a leaf is in a tree of a given root) and
/// consistency proofs (a tree is a prefix of a later one). Two uses in the ledger: the records root
/// of a run of blocks (leaves: the 64-byte records), and the tree of block hashes a signed head
/// commits to (leaves: the 32-byte block hashes). The domain separation keeps a leaf from ever being
/// taken for a node (no second-preimage trick across levels).
/// </summary>
/// <remarks>
/// The provers take every leaf hash of the tree and cost O(n) hashes per proof: an offline tool's and
/// a test's shape. The verifiers are the RFC's algorithms, O(log n), and refuse any malformed input
/// (an index not in the tree, a path of the wrong length) by returning false, never by throwing.
/// </remarks>
public static class Merkle
{
    private const byte LeafPrefix = 0x00;
    private const byte NodePrefix = 0x01;

    /// <summary>The longest path in a tree of at most 2^63 leaves.</summary>
    public const int MaxPathLength = 63;

    /// <summary>The root of the empty tree: SHA-256 of no bytes.</summary>
    public static Hash32 EmptyRoot { get; } = Hash32.From(SHA256.HashData(ReadOnlySpan<byte>.Empty));

    /// <summary>SHA-256(0x00 ‖ <paramref name="data"/>).</summary>
    public static Hash32 LeafHash(ReadOnlySpan<byte> data)
    {
        var hash = default(Hash32);
        if (data.Length <= 128)
        {
            Span<byte> input = stackalloc byte[1 + data.Length];
            input[0] = LeafPrefix;
            data.CopyTo(input[1..]);
            SmallSha256.Hash(input, hash);
            return hash;
        }
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData([LeafPrefix]);
        sha.AppendData(data);
        sha.GetHashAndReset(hash);
        return hash;
    }

    /// <summary>SHA-256(0x01 ‖ <paramref name="left"/> ‖ <paramref name="right"/>).</summary>
    public static Hash32 NodeHash(in Hash32 left, in Hash32 right)
    {
        Span<byte> input = stackalloc byte[1 + 2 * Hash32.Bytes];
        input[0] = NodePrefix;
        ((ReadOnlySpan<byte>)left).CopyTo(input[1..]);
        ((ReadOnlySpan<byte>)right).CopyTo(input[(1 + Hash32.Bytes)..]);
        var hash = default(Hash32);
        SmallSha256.Hash(input, hash);
        return hash;
    }

    /// <summary>The largest power of two strictly below <paramref name="n"/> (n ≥ 2): where RFC 6962 splits a tree.</summary>
    public static long Split(long n) => 1L << (63 - BitOperations.LeadingZeroCount((ulong)(n - 1)));

    /// <summary>The root of the tree over <paramref name="leaves"/> (leaf hashes), with no allocation.</summary>
    public static Hash32 Root(ReadOnlySpan<Hash32> leaves)
    {
        var range = new CompactRange();
        foreach (ref readonly Hash32 leaf in leaves)
        {
            range.Append(in leaf);
        }
        return range.Root();
    }

    /// <summary>
    /// The inclusion path of leaf <paramref name="index"/> in the tree over <paramref name="leaves"/>
    /// (RFC 6962 PATH(m, D[n])), from the leaf's sibling up to the root's child.
    /// </summary>
    public static Hash32[] InclusionPath(ReadOnlySpan<Hash32> leaves, long index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, leaves.Length);
        var path = new List<Hash32>(MaxPathLength);
        AddPath(leaves, index, path);
        return [.. path];
    }

    private static void AddPath(ReadOnlySpan<Hash32> leaves, long index, List<Hash32> path)
    {
        if (leaves.Length <= 1)
        {
            return;
        }
        int k = (int)Split(leaves.Length);
        if (index < k)
        {
            AddPath(leaves[..k], index, path);
            path.Add(Root(leaves[k..]));
        }
        else
        {
            AddPath(leaves[k..], index - k, path);
            path.Add(Root(leaves[..k]));
        }
    }

    /// <summary>
    /// The root that <paramref name="path"/> leads to from <paramref name="leaf"/> at
    /// <paramref name="index"/> in a tree of <paramref name="size"/> leaves (RFC 9162 §2.1.3.2);
    /// null when the index is not in the tree or the path's length does not fit it.
    /// </summary>
    public static Hash32? RootFromInclusionPath(in Hash32 leaf, long index, long size, ReadOnlySpan<Hash32> path)
    {
        if (index < 0 || size <= 0 || index >= size || path.Length > MaxPathLength)
        {
            return null;
        }
        long fn = index;
        long sn = size - 1;
        Hash32 r = leaf;
        foreach (ref readonly Hash32 p in path)
        {
            if (sn == 0)
            {
                return null;
            }
            if ((fn & 1) == 1 || fn == sn)
            {
                r = NodeHash(in p, in r);
                while ((fn & 1) == 0 && fn != 0)
                {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
            else
            {
                r = NodeHash(in r, in p);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 ? r : null;
    }

    /// <summary>Whether <paramref name="path"/> proves <paramref name="leaf"/> at <paramref name="index"/> in the tree of <paramref name="size"/> leaves and root <paramref name="root"/>.</summary>
    public static bool VerifyInclusion(in Hash32 leaf, long index, long size, ReadOnlySpan<Hash32> path, in Hash32 root) =>
        RootFromInclusionPath(in leaf, index, size, path) is { } computed && computed == root;

    /// <summary>
    /// The proof that the tree of the first <paramref name="m"/> of <paramref name="leaves"/> is a
    /// prefix of the tree over all of them (RFC 6962 PROOF(m, D[n])); empty when m is 0 or n.
    /// </summary>
    public static Hash32[] ConsistencyProof(ReadOnlySpan<Hash32> leaves, long m)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(m, leaves.Length);
        var proof = new List<Hash32>(MaxPathLength + 1);
        if (m > 0 && m < leaves.Length)
        {
            AddSubproof(m, leaves, complete: true, proof);
        }
        return [.. proof];
    }

    private static void AddSubproof(long m, ReadOnlySpan<Hash32> leaves, bool complete, List<Hash32> proof)
    {
        int n = leaves.Length;
        if (m == n)
        {
            if (!complete)
            {
                proof.Add(Root(leaves));
            }
            return;
        }
        int k = (int)Split(n);
        if (m <= k)
        {
            AddSubproof(m, leaves[..k], complete, proof);
            proof.Add(Root(leaves[k..]));
        }
        else
        {
            AddSubproof(m - k, leaves[k..], complete: false, proof);
            proof.Add(Root(leaves[..k]));
        }
    }

    /// <summary>
    /// Whether <paramref name="proof"/> shows the tree of <paramref name="oldSize"/> leaves and root
    /// <paramref name="oldRoot"/> to be a prefix of the tree of <paramref name="newSize"/> leaves and
    /// root <paramref name="newRoot"/> (RFC 9162 §2.1.4.2).
    /// </summary>
    public static bool VerifyConsistency(long oldSize, long newSize, in Hash32 oldRoot, in Hash32 newRoot, ReadOnlySpan<Hash32> proof)
    {
        if (oldSize < 0 || newSize < oldSize || proof.Length > MaxPathLength + 1)
        {
            return false;
        }
        if (oldSize == newSize)
        {
            return proof.IsEmpty && oldRoot == newRoot;
        }
        if (oldSize == 0)
        {
            return proof.IsEmpty; // the empty tree is a prefix of every tree
        }
        if (proof.IsEmpty)
        {
            return false;
        }
        bool powerOfTwo = (oldSize & (oldSize - 1)) == 0;
        int at = 0;
        Hash32 first = powerOfTwo ? oldRoot : proof[at++];
        long fn = oldSize - 1;
        long sn = newSize - 1;
        while ((fn & 1) == 1)
        {
            fn >>= 1;
            sn >>= 1;
        }
        Hash32 fr = first;
        Hash32 sr = first;
        for (; at < proof.Length; at++)
        {
            ref readonly Hash32 c = ref proof[at];
            if (sn == 0)
            {
                return false;
            }
            if ((fn & 1) == 1 || fn == sn)
            {
                fr = NodeHash(in c, in fr);
                sr = NodeHash(in c, in sr);
                while ((fn & 1) == 0 && fn != 0)
                {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
            else
            {
                sr = NodeHash(in sr, in c);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return fr == oldRoot && sr == newRoot && sn == 0;
    }
}

/// <summary>
/// An append-only Merkle tree held as the roots of its perfect subtrees, largest first (at most 64
/// hashes, inline): append a leaf hash in amortised O(1) hashes, read the root of everything so far
/// in O(log n). What a writer keeps to commit to a growing sequence (records, block hashes) without
/// keeping the sequence.
/// </summary>
public struct CompactRange
{
    [System.Runtime.CompilerServices.InlineArray(64)]
    private struct Hashes
    {
        private Hash32 _first;
    }

    private Hashes _subtrees;

    /// <summary>The leaves appended so far; bit i set ⇔ a perfect subtree of 2^i leaves is held.</summary>
    public long Size { get; private set; }

    public void Append(in Hash32 leafHash)
    {
        // Merge while the lowest subtree has the new one's size: one merge per trailing one bit of Size.
        int count = BitOperations.PopCount((ulong)Size);
        Hash32 carry = leafHash;
        for (long size = Size; (size & 1) == 1; size >>= 1)
        {
            count--;
            carry = Merkle.NodeHash(in _subtrees[count], in carry);
        }
        _subtrees[count] = carry;
        Size++;
    }

    /// <summary>The root of the tree over every leaf appended (<see cref="Merkle.EmptyRoot"/> when none).</summary>
    public readonly Hash32 Root()
    {
        int count = BitOperations.PopCount((ulong)Size);
        if (count == 0)
        {
            return Merkle.EmptyRoot;
        }
        Hash32 root = _subtrees[count - 1];
        for (int i = count - 2; i >= 0; i--)
        {
            root = Merkle.NodeHash(in _subtrees[i], in root);
        }
        return root;
    }

    /// <summary>Back to the empty tree.</summary>
    public void Clear() => Size = 0;

    /// <summary>The perfect subtrees' roots held, largest first (<c>PopCount(Size)</c> of them): what <see cref="Restore"/> takes back.</summary>
    public readonly Hash32[] Subtrees()
    {
        var subtrees = new Hash32[BitOperations.PopCount((ulong)Size)];
        for (int i = 0; i < subtrees.Length; i++)
        {
            subtrees[i] = _subtrees[i];
        }
        return subtrees;
    }

    /// <summary>The range of <paramref name="size"/> leaves whose perfect subtrees' roots are <paramref name="subtrees"/>, largest first.</summary>
    /// <exception cref="ArgumentException">Not one root per set bit of the size.</exception>
    public static CompactRange Restore(long size, ReadOnlySpan<Hash32> subtrees)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        if (subtrees.Length != BitOperations.PopCount((ulong)size))
        {
            throw new ArgumentException($"a range of {size} leaves holds {BitOperations.PopCount((ulong)size)} subtrees, not {subtrees.Length}", nameof(subtrees));
        }
        var range = new CompactRange { Size = size };
        for (int i = 0; i < subtrees.Length; i++)
        {
            range._subtrees[i] = subtrees[i];
        }
        return range;
    }
}
