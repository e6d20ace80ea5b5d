using System.Buffers.Binary;
using System.Security.Cryptography;
using Engine.Protocol;

namespace Engine.Core.Chain;

/// <summary>The first block that does not verify, where it is and why.</summary>
/// <param name="BlockNo">The block number expected at that position.</param>
/// <param name="Address">The entry's address in the log.</param>
/// <param name="Reason">What is wrong with it.</param>
public sealed record BlockFault(ulong BlockNo, long Address, string Reason)
{
    public override string ToString() => $"block {BlockNo} at address {Address}: {Reason}";
}

/// <summary>
/// Checks a chain one entry at a time, in log order: shape, numbering, dense LSNs, the link to the
/// previous block and the block's own SHA-256. Stops trusting at the first fault.
/// </summary>
public sealed class ChainVerifier
{
    private ChainHead _head;
    private bool _expectGenesis;

    /// <summary>Verifies a chain from its genesis block.</summary>
    public ChainVerifier()
    {
        _expectGenesis = true;
    }

    /// <summary>Verifies a chain that continues after a head already trusted.</summary>
    public ChainVerifier(ChainHead trusted)
    {
        _head = trusted;
    }

    /// <summary>The last verified block.</summary>
    public ChainHead Head => _head;

    public long Blocks { get; private set; }

    public long Transactions { get; private set; }

    public long Bytes { get; private set; }

    /// <summary>Checks the next entry; null if it verifies (and the head moves to it), else the fault.</summary>
    public BlockFault? Check(ReadOnlySpan<byte> entry, long address, out BlockHeader header)
    {
        ulong expectedNo = _expectGenesis ? BlockFormat.GenesisBlockNo : _head.BlockNo + 1;
        string? shape = BlockFormat.TryReadHeader(entry, out header);
        if (shape is not null)
        {
            return new BlockFault(expectedNo, address, shape);
        }
        if (header.BlockNo != expectedNo)
        {
            return new BlockFault(expectedNo, address, $"block number {header.BlockNo} where {expectedNo} was expected");
        }
        if (_expectGenesis)
        {
            if (header.Count != 0 || header.FirstLsn != 1 || header.PrevHash != Hash32.Zero)
            {
                return new BlockFault(expectedNo, address, "the genesis block must be empty, start at LSN 1 and chain to 32 zero bytes");
            }
        }
        else
        {
            if (header.Epoch < _head.Epoch)
            {
                return new BlockFault(expectedNo, address, $"epoch {header.Epoch} after epoch {_head.Epoch}");
            }
            if (header.FirstLsn != _head.LastLsn + 1)
            {
                return new BlockFault(expectedNo, address, $"first LSN {header.FirstLsn} where {_head.LastLsn + 1} was expected");
            }
            if (header.PrevHash != _head.Hash)
            {
                return new BlockFault(expectedNo, address, $"previous hash {header.PrevHash.ToShortString()} does not match block {_head.BlockNo}'s hash {_head.Hash.ToShortString()}");
            }
        }
        int hashed = BlockFormat.HeaderBytes + header.BodyBytes;
        Hash32 computed = default;
        SHA256.HashData(entry[..hashed], computed);
        if (computed != BlockFormat.StoredHash(entry, in header))
        {
            return new BlockFault(expectedNo, address, $"hash mismatch: computed {computed.ToShortString()}, stored {BlockFormat.StoredHash(entry, in header).ToShortString()}");
        }
        // The hash matched, so the records are as sealed; a dense LSN check still catches a sealer
        // bug rather than tampering.
        ReadOnlySpan<byte> body = BlockFormat.Body(entry, in header);
        for (int i = 0; i < header.Count; i++)
        {
            ulong lsn = BinaryPrimitives.ReadUInt64LittleEndian(body[(i * LedgerRecord.Bytes)..]);
            if (lsn != header.FirstLsn + (ulong)i)
            {
                return new BlockFault(expectedNo, address, $"record {i} has LSN {lsn}, expected {header.FirstLsn + (ulong)i}");
            }
        }
        _expectGenesis = false;
        _head = new ChainHead(header.Epoch, header.BlockNo, header.LastLsn, computed);
        Blocks++;
        Transactions += header.Count;
        Bytes += entry.Length;
        return null;
    }
}
