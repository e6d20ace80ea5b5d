using CsCheck;
using Engine.Protocol;

namespace Engine.Tests.Chain;

/// <summary>
/// RFC 6962 trees: the Certificate Transparency test vectors, and properties over generated trees:
/// every inclusion path and every consistency proof verifies, and any change to a proof, a leaf, an
/// index, a size or a root makes it fail.
/// </summary>
public class MerkleTests
{
    // certificate-transparency's merkle_tree_test.cc: leaf data and the roots of its first 1…8 leaves.
    private static readonly string[] VectorLeaves = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

    private static readonly string[] VectorRoots =
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    private static readonly string[] VectorPathOfLeaf0 =
    [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ];

    private static Hash32[] VectorLeafHashes() => [.. VectorLeaves.Select(hex => Merkle.LeafHash(Convert.FromHexString(hex)))];

    [Test]
    public void The_certificate_transparency_vectors()
    {
        Assert.That(Merkle.EmptyRoot.ToString(), Is.EqualTo("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
        Hash32[] leaves = VectorLeafHashes();
        var range = new CompactRange();
        for (int n = 1; n <= leaves.Length; n++)
        {
            Assert.That(Merkle.Root(leaves.AsSpan(0, n)).ToString(), Is.EqualTo(VectorRoots[n - 1]), $"root of {n}");
            range.Append(in leaves[n - 1]);
            Assert.That(range.Root().ToString(), Is.EqualTo(VectorRoots[n - 1]), $"compact range of {n}");
        }
        Assert.That(Merkle.InclusionPath(leaves, 0).Select(h => h.ToString()), Is.EqualTo(VectorPathOfLeaf0), "the path of leaf 0 in the tree of 8");
    }

    private static readonly Gen<Hash32[]> GenLeaves = Gen.Int[1, 300].SelectMany(n => Gen.Byte.Array[32].Array[n])
        .Select(raw => raw.Select(b => Merkle.LeafHash(b)).ToArray());

    [Test]
    public void Every_inclusion_path_verifies_and_leads_to_the_root_of_the_tree()
    {
        GenLeaves.Sample(leaves =>
        {
            Hash32 root = Merkle.Root(leaves);
            for (int i = 0; i < leaves.Length; i++)
            {
                Hash32[] path = Merkle.InclusionPath(leaves, i);
                if (!Merkle.VerifyInclusion(in leaves[i], i, leaves.Length, path, in root))
                {
                    return false;
                }
            }
            return true;
        }, iter: 60);
    }

    /// <remarks>
    /// A tree's size is not varied alone: one path can fit trees of neighbouring sizes, and it is the
    /// root, signed together with its size, that binds the size.
    /// </remarks>
    [Test]
    public void A_changed_leaf_index_path_or_root_fails_inclusion()
    {
        Gen.Select(GenLeaves, Gen.Int[0, int.MaxValue], Gen.Int[0, 255]).Sample((leaves, pick, bit) =>
        {
            int i = pick % leaves.Length;
            Hash32 root = Merkle.Root(leaves);
            Hash32[] path = Merkle.InclusionPath(leaves, i);
            bool Verifies(Hash32 leaf, long index, long size, Hash32[] p, Hash32 r) => Merkle.VerifyInclusion(in leaf, index, size, p, in r);

            bool wrongLeaf = Verifies(Flip(leaves[i], bit), i, leaves.Length, path, root);
            bool wrongRoot = Verifies(leaves[i], i, leaves.Length, path, Flip(root, bit));
            bool wrongIndex = leaves.Length > 1 && Verifies(leaves[i], (i + 1 + pick % (leaves.Length - 1)) % leaves.Length, leaves.Length, path, root);
            bool pastEnd = Verifies(leaves[i], leaves.Length, leaves.Length, path, root);
            bool wrongPath = path.Length > 0 && Verifies(leaves[i], i, leaves.Length, Changed(path, pick % path.Length, bit), root);
            bool shorter = path.Length > 0 && Verifies(leaves[i], i, leaves.Length, path[..^1], root);
            bool longer = Verifies(leaves[i], i, leaves.Length, [.. path, root], root);
            return !(wrongLeaf || wrongRoot || wrongIndex || pastEnd || wrongPath || shorter || longer);
        }, iter: 300);
    }

    [Test]
    public void Every_consistency_proof_verifies_and_any_change_fails_it()
    {
        Gen.Select(GenLeaves, Gen.Int[0, 255]).Sample((leaves, bit) =>
        {
            Hash32 newRoot = Merkle.Root(leaves);
            for (int m = 0; m <= leaves.Length; m++)
            {
                Hash32 oldRoot = Merkle.Root(leaves.AsSpan(0, m));
                Hash32[] proof = Merkle.ConsistencyProof(leaves, m);
                if (!Merkle.VerifyConsistency(m, leaves.Length, in oldRoot, in newRoot, proof))
                {
                    return false;
                }
                if (m == 0 || m == leaves.Length)
                {
                    continue; // nothing in the proof to change
                }
                if (Merkle.VerifyConsistency(m, leaves.Length, Flip(oldRoot, bit), in newRoot, proof)
                    || Merkle.VerifyConsistency(m, leaves.Length, in oldRoot, Flip(newRoot, bit), proof)
                    || Merkle.VerifyConsistency(m, leaves.Length, in oldRoot, in newRoot, Changed(proof, bit % proof.Length, bit))
                    || Merkle.VerifyConsistency(m, leaves.Length, in oldRoot, in newRoot, proof.AsSpan(0, proof.Length - 1))
                    || Merkle.VerifyConsistency(m, leaves.Length, in oldRoot, in newRoot, [.. proof, newRoot]))
                {
                    return false;
                }
            }
            return true;
        }, iter: 40);
    }

    [Test]
    public void A_tree_that_is_not_a_prefix_is_not_consistent()
    {
        Hash32[] leaves = VectorLeafHashes();
        Hash32[] other = [.. leaves];
        other[2] = Merkle.LeafHash([0xff]);
        for (int m = 3; m < leaves.Length; m++)
        {
            Hash32[] proof = Merkle.ConsistencyProof(leaves, m);
            Assert.That(Merkle.VerifyConsistency(m, leaves.Length, Merkle.Root(other.AsSpan(0, m)), Merkle.Root(leaves), proof), Is.False, $"a changed leaf 2 under size {m}");
        }
    }

    [Test]
    public void A_leaf_is_never_a_node()
    {
        Hash32 a = Merkle.LeafHash([1]);
        Hash32 b = Merkle.LeafHash([2]);
        byte[] asLeaf = [.. (ReadOnlySpan<byte>)a, .. (ReadOnlySpan<byte>)b];
        Assert.That(Merkle.LeafHash(asLeaf), Is.Not.EqualTo(Merkle.NodeHash(in a, in b)), "the two children's bytes as one leaf do not hash to their node");
        byte[] longLeaf = [.. Enumerable.Range(0, 300).Select(i => (byte)i)];
        Assert.That(Merkle.LeafHash(longLeaf), Is.EqualTo(Hash32.From(System.Security.Cryptography.SHA256.HashData([0x00, .. longLeaf]))), "a leaf longer than the stack buffer");
    }

    [Test]
    public void The_small_input_hash_is_sha256_whichever_implementation_runs()
    {
        TestContext.Out.WriteLine($"OpenSSL low-level SHA-256 in use: {SmallSha256.Native}");
        Gen.Byte.Array[0, 300].Sample(data =>
        {
            Span<byte> small = stackalloc byte[32];
            SmallSha256.Hash(data, small);
            return small.SequenceEqual(System.Security.Cryptography.SHA256.HashData(data));
        }, iter: 2000);
    }

    private static Hash32 Flip(Hash32 hash, int bit)
    {
        Span<byte> bytes = hash;
        bytes[(bit / 8) % Hash32.Bytes] ^= (byte)(1 << (bit % 8));
        return hash;
    }

    private static Hash32[] Changed(Hash32[] path, int at, int bit)
    {
        Hash32[] copy = [.. path];
        copy[at] = Flip(copy[at], bit);
        return copy;
    }
}
