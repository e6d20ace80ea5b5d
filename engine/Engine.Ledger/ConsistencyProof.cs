using Engine.Protocol;

namespace Engine.Ledger;

/// <summary>
/// Proof that a newer signed head extends an older one: the tree of block hashes the old head
/// signed is a prefix of the new head's (RFC 6962/9162 consistency), so the ledger behind the old
/// head was not rewritten, only appended to. What an auditor who kept a head checks against a later
/// one; both heads travel in the proof, each checked with the ledger key.
/// </summary>
/// <param name="ClusterId">The cluster whose ledger it is (both heads name it).</param>
/// <param name="OldHead">The head of the shorter (or equal) tree.</param>
/// <param name="NewHead">The head of the longer tree.</param>
/// <param name="Path">The consistency path (RFC 6962 PROOF(m, D[n])); empty when the sizes are equal.</param>
public sealed record ConsistencyProof(ClusterId ClusterId, SignedHead OldHead, SignedHead NewHead, Hash32[] Path)
{
    public const string Format = "engine-consistency-proof/1";

    /// <summary>Longest JSON read (two heads and a path of at most <see cref="Merkle.MaxPathLength"/> + 1 hashes fit many times over).</summary>
    public const int MaxJsonBytes = 64 << 10;

    /// <summary>
    /// Null when the proof holds: both heads are of the proof's cluster and signed by the ledger key
    /// (<paramref name="verifySignature"/>: signed part, signature → valid), the old one is no larger,
    /// and the path leads from the old root to the new one; else why not.
    /// </summary>
    public string? Verify(Func<byte[], byte[], bool> verifySignature)
    {
        ArgumentNullException.ThrowIfNull(verifySignature);
        if (OldHead.ClusterId != ClusterId || NewHead.ClusterId != ClusterId)
        {
            return $"the heads are of clusters {OldHead.ClusterId.Describe()} and {NewHead.ClusterId.Describe()}, the proof says {ClusterId.Describe()}";
        }
        if (OldHead.TreeSize > NewHead.TreeSize)
        {
            return $"the old head signs {OldHead.TreeSize:N0} blocks, more than the new head's {NewHead.TreeSize:N0}";
        }
        if (!verifySignature(OldHead.SignedPart(), OldHead.Signature))
        {
            return "the old head's signature is not the ledger key's";
        }
        if (!verifySignature(NewHead.SignedPart(), NewHead.Signature))
        {
            return "the new head's signature is not the ledger key's";
        }
        if (!Merkle.VerifyConsistency(OldHead.TreeSize, NewHead.TreeSize, OldHead.Root, NewHead.Root, Path))
        {
            return $"the path does not show the tree of {OldHead.TreeSize:N0} blocks (root {OldHead.Root.ToShortString()}) to be a prefix of the tree of {NewHead.TreeSize:N0} (root {NewHead.Root.ToShortString()}): the ledger was rewritten, or the proof altered";
        }
        return null;
    }

    /// <summary>The proof as JSON (hex for bytes).</summary>
    public byte[] ToJsonUtf8() => ProofJson.Write(Format, ClusterId, json =>
    {
        json.WriteString("old_head", Convert.ToHexStringLower(OldHead.ToBytes()));
        json.WriteString("new_head", Convert.ToHexStringLower(NewHead.ToBytes()));
        ProofJson.WritePath(json, "path", Path);
    });

    /// <summary>Reads a proof written by <see cref="ToJsonUtf8"/>; null and why when it is not one (bounded: sizes, lengths, hex).</summary>
    public static ConsistencyProof? TryParse(ReadOnlySpan<byte> utf8, out string? wrong) =>
        ProofJson.Parse(utf8, MaxJsonBytes, Format, (root, cluster) =>
            new ConsistencyProof(cluster, ProofJson.Head(root, "old_head"), ProofJson.Head(root, "new_head"), ProofJson.Path(root, "path", Merkle.MaxPathLength + 1)), out wrong);
}
