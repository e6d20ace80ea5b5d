using System.Buffers.Binary;
using Engine.Core.Chain;
using Engine.Protocol;

namespace Engine.Replication;

/// <summary>What travels on the link between the primary and its backup.</summary>
public enum ReplicationType : byte
{
    /// <summary>Backup → primary, first (once the channel is authenticated): where my chain ends; status 2: only asking for the epoch (a probe).</summary>
    Hello = 1,

    /// <summary>Primary → backup: whether the backup's head is on our chain (status 0) or not (1), or that a snapshot follows for it to install (2); and our epoch and last block.</summary>
    HelloAck = 2,

    /// <summary>Primary → backup: one sealed block, exactly as journaled.</summary>
    Block = 3,

    /// <summary>Backup → primary: block N is verified, journaled and applied here.</summary>
    Ack = 4,

    /// <summary>Both ways when idle: I am alive (the backup echoes the primary's).</summary>
    Heartbeat = 5,

    /// <summary>
    /// Primary → backup: the catch-up is complete; what follows is live. Only from here on is the
    /// backup in step, and only an in-step backup may take over (one still catching up lacks blocks
    /// that a solo primary acknowledged).
    /// </summary>
    CaughtUp = 6,

    /// <summary>
    /// Primary → backup, during catch-up: many Block frames at once, LZ4-compressed. Payload: u32
    /// length of the frames uncompressed, then the LZ4 block.
    /// </summary>
    CatchUpBatch = 7,

    /// <summary>Primary → backup: the state checksum after block N (payload as an Ack); the backup compares its own.</summary>
    StateChecksum = 8,

    /// <summary>Primary → backup, after a HelloAck of status 2: a chunk of the snapshot the backup installs (see <see cref="SnapshotTransfer"/>).</summary>
    SnapshotChunk = 9,

    /// <summary>Backup → primary: the bytes of snapshot received so far.</summary>
    SnapshotAck = 10,

    /// <summary>Primary → backup, after the last chunk: the block the snapshot stands after, which starts the backup's new journal (acknowledged as a block).</summary>
    SnapshotAnchor = 11,

    /// <summary>Observer → primary, its first and only frame: follow the ledger from this block (payload: u64 block number); blocks come as <see cref="Block"/> frames.</summary>
    ObserveFrom = 12,

    /// <summary>Primary → observer: a signed head (<c>SignedHead.ToBytes</c>) over blocks all sent before it.</summary>
    SignedHead = 13,

    /// <summary>Primary → observer: why it is not (or no longer) served, UTF-8; the link closes after it.</summary>
    ObserveRefused = 14,
}

/// <summary>
/// Frames of the replication link. Blocks are up to 64 KiB, far over the client protocol's 256
/// bytes, so the link has its own framing, carried inside the records of a
/// <see cref="Engine.Security.SecureChannel"/> (<see cref="ReplicationLink"/>: a record holds one or
/// more frames, or part of one; the channel authenticates, the CRC still checks the framing):
/// <code>
///  0 u32 length (whole frame)  4 u8 type  5 u8[3] reserved = 0  8 u32 crc32c(payload)  12 payload
///
///  Hello / HelloAck payload (64 B): 0 u8 status (Hello: 0 attach, 2 probe only, 3 head probe; HelloAck: 0 on our
///    chain, 1 diverged, 4 a snapshot follows), 1 u8[3] 0, 4 u32 0 (was a node id: who the peer is now comes from the
///    channel's authenticated principal), 8 u64 epoch, 16 u64 head block, 24 u64 last LSN, 32 u8[32] head hash
///  Block payload: the block entry (header, records, hash), verified by its own SHA-256 chain
///  Ack payload (40 B): 0 u64 block number, 8 u8[32] block hash (acks are cumulative)
///  CatchUpBatch payload: 0 u32 uncompressed length, 4 LZ4 block of whole Block frames
///  SnapshotChunk payload: 0 u64 offset, 8 u64 snapshot length, 16 u32 chunk length, 20 LZ4 block
///  SnapshotAck payload: 0 u64 bytes received;  SnapshotAnchor payload: as Block
///  ObserveFrom payload: 0 u64 first block;  SignedHead payload: a signed head (136 B);  ObserveRefused payload: UTF-8 text
/// </code>
/// </summary>
public static class ReplicationFrame
{
    public const int HeaderBytes = 12;
    public const int MaxBytes = 1 << 20;
    public const int HelloBytes = 64;
    public const int AckBytes = 40;

    /// <summary>HelloAck status: the backup's chain is not continued with blocks; a snapshot follows (<see cref="SnapshotTransfer"/>) for it to install, then the blocks after it.</summary>
    public const byte SnapshotFollows = 4;

    /// <summary>Hello status: "only tell me your epoch", sent by a node that starts as primary to find out whether its peer took over.</summary>
    public const byte ProbeOnly = 2;

    /// <summary>
    /// Hello status: "what does your journal hold?", sent by a backup that has no primary to follow
    /// while nobody holds the witness's lease (see <c>PairNode</c>'s head probe). The answer, a hello
    /// ack, carries this status too when the peer is no primary, with its journal's head (hash
    /// included); status 0 and the primary's epoch when it is one.
    /// </summary>
    public const byte HeadProbe = 3;

    public static int Write(Span<byte> destination, ReplicationType type, ReadOnlySpan<byte> payload)
    {
        payload.CopyTo(destination[HeaderBytes..]);
        return WriteHeader(destination, type, payload.Length);
    }

    /// <summary>Writes the header of a frame whose <paramref name="payloadLength"/> bytes of payload are already in place after it; returns the frame's length.</summary>
    public static int WriteHeader(Span<byte> destination, ReplicationType type, int payloadLength)
    {
        int length = HeaderBytes + payloadLength;
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)length);
        destination[4] = (byte)type;
        destination.Slice(5, 3).Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], Crc32C.Compute(destination.Slice(HeaderBytes, payloadLength)));
        return length;
    }

    public static byte[] Hello(ReplicationType type, byte status, in ChainHead head)
    {
        Span<byte> payload = stackalloc byte[HelloBytes];
        payload.Clear();
        payload[0] = status;
        BinaryPrimitives.WriteUInt64LittleEndian(payload[8..], head.Epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(payload[16..], head.BlockNo);
        BinaryPrimitives.WriteUInt64LittleEndian(payload[24..], head.LastLsn);
        Hash32 hash = head.Hash;
        ((ReadOnlySpan<byte>)hash).CopyTo(payload[32..]);
        var frame = new byte[HeaderBytes + HelloBytes];
        Write(frame, type, payload);
        return frame;
    }

    /// <summary>
    /// Why a whole frame (header and payload, <paramref name="frame"/> exactly its length field long)
    /// is not one this side accepts, or null: a length out of bounds, reserved bytes set, a bad CRC.
    /// </summary>
    public static string? Invalid(ReadOnlySpan<byte> frame, int maxFrameBytes)
    {
        if (frame.Length < HeaderBytes)
        {
            return $"a replication frame of {frame.Length} bytes (a header is {HeaderBytes})";
        }
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(frame);
        if (length < HeaderBytes || length > maxFrameBytes || length != frame.Length)
        {
            return $"a replication frame of {length:N0} bytes (at most {maxFrameBytes:N0} here)";
        }
        if (frame[5] != 0 || frame[6] != 0 || frame[7] != 0)
        {
            return "a replication frame with reserved bytes set";
        }
        if (BinaryPrimitives.ReadUInt32LittleEndian(frame[8..]) != Crc32C.Compute(frame[HeaderBytes..]))
        {
            return "a replication frame with a bad CRC";
        }
        return null;
    }

    /// <summary>Reads a Hello or HelloAck payload.</summary>
    /// <exception cref="InvalidDataException">Not exactly <see cref="HelloBytes"/> long.</exception>
    public static ChainHead ReadHello(ReadOnlySpan<byte> payload, out byte status)
    {
        if (payload.Length != HelloBytes)
        {
            throw new InvalidDataException($"a hello of {payload.Length} bytes (a hello is {HelloBytes})");
        }
        status = payload[0];
        return new ChainHead(
            BinaryPrimitives.ReadUInt64LittleEndian(payload[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(payload[16..]),
            BinaryPrimitives.ReadUInt64LittleEndian(payload[24..]),
            Hash32.From(payload[32..]));
    }

    /// <summary>Writes a whole Ack (or StateChecksum) frame, <see cref="HeaderBytes"/> + <see cref="AckBytes"/> long, for block <paramref name="blockNo"/> and <paramref name="hash"/>.</summary>
    public static int WriteAck(Span<byte> destination, ReplicationType type, ulong blockNo, in Hash32 hash)
    {
        Span<byte> payload = stackalloc byte[AckBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, blockNo);
        ((ReadOnlySpan<byte>)hash).CopyTo(payload[8..]);
        return Write(destination, type, payload);
    }

    /// <summary>Reads an Ack (or StateChecksum) payload: a block number and a hash.</summary>
    /// <exception cref="InvalidDataException">Not exactly <see cref="AckBytes"/> long.</exception>
    public static ulong ReadAck(ReadOnlySpan<byte> payload, out Hash32 hash)
    {
        if (payload.Length != AckBytes)
        {
            throw new InvalidDataException($"an acknowledgement of {payload.Length} bytes (one is {AckBytes})");
        }
        hash = Hash32.From(payload[8..]);
        return BinaryPrimitives.ReadUInt64LittleEndian(payload);
    }
}
