using System.Buffers.Binary;
using System.Net.Sockets;
using Engine.Core.Chain;
using Engine.Protocol;

namespace Engine.Replication;

/// <summary>What travels on the link between the primary and its backup.</summary>
public enum ReplicationType : byte
{
    /// <summary>Primary → backup, first: who I am and where my chain ends.</summary>
    Hello = 1,

    /// <summary>Backup → primary: in step (status 0) or not, and where the backup's chain ends.</summary>
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
}

/// <summary>
/// The pair's clocks. A heartbeat goes out when a side has sent nothing for <see cref="HeartbeatMs"/>;
/// a side that hears nothing for <see cref="SilenceMs"/> drops the link (the backup then takes
/// over; the primary stops acknowledging). Silence must be several heartbeats long, so that one
/// late packet is not a failover, and short enough that a stalled primary (a long GC pause, a
/// SIGSTOP) is replaced within a second.
/// </summary>
public static class PairTimings
{
    public const int HeartbeatMs = 50;
    public const int SilenceMs = 500;
}

/// <summary>
/// Frames of the replication link. Blocks are up to 64 KiB, far over the client protocol's 256
/// bytes, so the link has its own framing:
/// <code>
///  0 u32 length (whole frame)  4 u8 type  5 u8[3] reserved = 0  8 u32 crc32c(payload)  12 payload
///
///  Hello / HelloAck payload (64 B): 0 u8 status (Hello: 0 attach, 2 probe only; HelloAck: 0 on our
///    chain, 1 diverged), 1 u8[3] 0, 4 u32 node id (CRC-32C of its replication endpoint),
///    8 u64 epoch, 16 u64 head block, 24 u64 last LSN, 32 u8[32] head hash
///  Block payload: the block entry (header, records, hash), verified by its own SHA-256 chain
///  Ack payload (40 B): 0 u64 block number, 8 u8[32] block hash (acks are cumulative)
///  CatchUpBatch payload: 0 u32 uncompressed length, 4 LZ4 block of whole Block frames
/// </code>
/// </summary>
public static class ReplicationFrame
{
    public const int HeaderBytes = 12;
    public const int MaxBytes = 1 << 20;
    public const int HelloBytes = 64;
    public const int AckBytes = 40;

    /// <summary>Hello status: "only tell me your epoch", sent by a node that starts as primary to find out whether its peer took over.</summary>
    public const byte ProbeOnly = 2;

    public static int Write(Span<byte> destination, ReplicationType type, ReadOnlySpan<byte> payload)
    {
        int length = HeaderBytes + payload.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)length);
        destination[4] = (byte)type;
        destination.Slice(5, 3).Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], Crc32C.Compute(payload));
        payload.CopyTo(destination[HeaderBytes..]);
        return length;
    }

    /// <summary>This process's node id, in every Hello: set once at start from the node's replication endpoint.</summary>
    public static uint NodeId { get; set; }

    /// <summary>A stable node id: CRC-32C of the node's replication endpoint as configured.</summary>
    public static uint NodeIdOf(string replicationEndpoint) => Crc32C.Compute(System.Text.Encoding.UTF8.GetBytes(replicationEndpoint));

    public static byte[] Hello(ReplicationType type, byte status, in ChainHead head)
    {
        Span<byte> payload = stackalloc byte[HelloBytes];
        payload.Clear();
        payload[0] = status;
        BinaryPrimitives.WriteUInt32LittleEndian(payload[4..], NodeId);
        BinaryPrimitives.WriteUInt64LittleEndian(payload[8..], head.Epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(payload[16..], head.BlockNo);
        BinaryPrimitives.WriteUInt64LittleEndian(payload[24..], head.LastLsn);
        Hash32 hash = head.Hash;
        ((ReadOnlySpan<byte>)hash).CopyTo(payload[32..]);
        var frame = new byte[HeaderBytes + HelloBytes];
        Write(frame, type, payload);
        return frame;
    }

    public static ChainHead ReadHello(ReadOnlySpan<byte> payload, out byte status) => ReadHello(payload, out status, out _);

    public static ChainHead ReadHello(ReadOnlySpan<byte> payload, out byte status, out uint nodeId)
    {
        status = payload[0];
        nodeId = BinaryPrimitives.ReadUInt32LittleEndian(payload[4..]);
        return new ChainHead(
            BinaryPrimitives.ReadUInt64LittleEndian(payload[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(payload[16..]),
            BinaryPrimitives.ReadUInt64LittleEndian(payload[24..]),
            Hash32.From(payload[32..]));
    }

    /// <summary>
    /// Reads one whole frame from <paramref name="socket"/> into <paramref name="buffer"/> (grown if
    /// needed); returns its type and payload length, or null when the peer closed the connection.
    /// </summary>
    /// <exception cref="InvalidDataException">A bad length or CRC: the link is corrupt.</exception>
    public static async Task<(ReplicationType Type, int PayloadLength)?> ReadAsync(Socket socket, byte[] buffer, CancellationToken cancel)
    {
        if (!await ReadExactlyAsync(socket, buffer.AsMemory(0, HeaderBytes), cancel).ConfigureAwait(false))
        {
            return null;
        }
        int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer);
        if (length < HeaderBytes || length > MaxBytes || length > buffer.Length)
        {
            throw new InvalidDataException($"replication frame of {length} bytes");
        }
        if (!await ReadExactlyAsync(socket, buffer.AsMemory(HeaderBytes, length - HeaderBytes), cancel).ConfigureAwait(false))
        {
            return null;
        }
        uint crc = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(8));
        if (crc != Crc32C.Compute(buffer.AsSpan(HeaderBytes, length - HeaderBytes)))
        {
            throw new InvalidDataException("replication frame with a bad CRC");
        }
        return ((ReplicationType)buffer[4], length - HeaderBytes);
    }

    private static async Task<bool> ReadExactlyAsync(Socket socket, Memory<byte> target, CancellationToken cancel)
    {
        int got = 0;
        while (got < target.Length)
        {
            int read = await socket.ReceiveAsync(target[got..], SocketFlags.None, cancel).ConfigureAwait(false);
            if (read == 0)
            {
                return false;
            }
            got += read;
        }
        return true;
    }
}
