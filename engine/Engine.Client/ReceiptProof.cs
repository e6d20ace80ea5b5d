using Engine.Protocol;
using Engine.Security;

namespace Engine.Client;

/// <summary>
/// Checks, offline and with only the cluster's ledger public key, that a receipt's transaction is in
/// the ledger where the receipt says: the proof (<see cref="EngineClient.GetProofAsync"/>, or a file
/// from <c>engine log prove</c>) must verify under the key, and be of the receipt's transaction
/// (its LSN, its block, its client and clientSeq in the record).
/// </summary>
public static class ReceiptProof
{
    /// <summary>Null when <paramref name="proof"/> proves <paramref name="receipt"/> under <paramref name="ledgerPublicKey"/>; else why not.</summary>
    public static string? Verify(InclusionProof proof, in Receipt receipt, ReadOnlySpan<byte> ledgerPublicKey)
    {
        ArgumentNullException.ThrowIfNull(proof);
        if (proof.Lsn != receipt.Lsn || proof.Block != receipt.BlockNo)
        {
            return $"the proof is of LSN {proof.Lsn} in block {proof.Block}, the receipt says LSN {receipt.Lsn} in block {receipt.BlockNo}";
        }
        byte[] key = ledgerPublicKey.ToArray();
        if (proof.Verify((signed, signature) => LedgerKey.VerifyHead(key, signed, signature)) is { } invalid)
        {
            return invalid;
        }
        // Verify checked that the record is of a kind this version knows.
        LedgerRecord.Read(proof.Record, out Transaction tx);
        if (tx.ClientId != receipt.ClientId || tx.ClientSeq != receipt.ClientSeq)
        {
            return $"the record is client {tx.ClientId} seq {tx.ClientSeq}, the receipt's is client {receipt.ClientId} seq {receipt.ClientSeq}";
        }
        return null;
    }
}

/// <summary>The engine made no proof for a request: why (<see cref="RejectReason.ProofUnavailable"/>: retry later; <see cref="RejectReason.NoSuchTransaction"/>: no transaction of this client there).</summary>
public sealed class ProofRefusedException : Exception
{
    public ProofRefusedException(RejectReason reason, string text)
        : base($"{reason}: {text}") => Reason = reason;

    public ProofRefusedException()
    {
    }

    public ProofRefusedException(string message)
        : base(message)
    {
    }

    public ProofRefusedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public RejectReason Reason { get; }
}
