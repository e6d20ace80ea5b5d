using System.Buffers.Binary;
using CsCheck;
using Engine.Replication;

namespace Engine.Tests.Fuzz;

/// <summary>
/// The catch-up's LZ4 batches, the one replication payload a backup decompresses: any bytes are
/// unpacked into whole, CRC-checked Block payloads or refused with <see cref="InvalidDataException"/>
/// (the backup resets the link on that), never another exception, never a write past the buffer.
/// Valid batches round-trip. How long: <see cref="FuzzRun"/>.
/// </summary>
public class CatchUpBatchFuzzTests
{
    /// <summary>A few blocks' payloads, compressible or not (repeated runs and random bytes).</summary>
    private static readonly Gen<byte[][]> s_blocks = Gen.OneOf(
            Gen.Byte.Array[1, 2_000],
            Gen.Select(Gen.Byte, Gen.Int[1, 4_000], (value, count) => Enumerable.Repeat(value, count).ToArray()))
        .Array[0, 12];

    // Sample runs cases on several threads; a batch's buffers are 256 KiB, too big to make per case.
    [ThreadStatic] private static byte[]? t_frame;
    [ThreadStatic] private static byte[]? t_unpacked;

    private static byte[] Frames(byte[][] blocks)
    {
        var frames = new byte[blocks.Sum(b => ReplicationFrame.HeaderBytes + b.Length)];
        int at = 0;
        foreach (byte[] block in blocks)
        {
            at += ReplicationFrame.Write(frames.AsSpan(at), ReplicationType.Block, block);
        }
        return frames;
    }

    /// <summary>The payload of a CatchUpBatch frame (what the backup's reader gets).</summary>
    private static byte[] PackedPayload(byte[] frames)
    {
        byte[] frame = t_frame ??= new byte[CatchUpBatch.MaxFrameBytes];
        int length = CatchUpBatch.Pack(frames, frame);
        Assert.That((ReplicationType)frame[4], Is.EqualTo(ReplicationType.CatchUpBatch));
        return frame[ReplicationFrame.HeaderBytes..length];
    }

    private static List<byte[]> Unpack(byte[] payload)
    {
        byte[] unpacked = t_unpacked ??= new byte[CatchUpBatch.MaxRawBytes];
        var blocks = new List<byte[]>();
        CatchUpBatch.Reader reader = CatchUpBatch.Open(payload, unpacked);
        while (reader.TryNext(out ReadOnlySpan<byte> block))
        {
            blocks.Add(block.ToArray());
        }
        return blocks;
    }

    [Test]
    public void A_packed_batch_unpacks_to_the_same_blocks()
    {
        s_blocks.Sample(blocks =>
        {
            List<byte[]> back = Unpack(PackedPayload(Frames(blocks)));
            return back.Count == blocks.Length && back.Zip(blocks).All(pair => pair.First.AsSpan().SequenceEqual(pair.Second));
        }, seed: FuzzRun.Seed, iter: FuzzRun.Iterations(2_000));
    }

    /// <summary>
    /// Hostile payloads: random bytes with a plausible or absurd length prefix; valid batches with
    /// compressed bytes changed, cut or extended; the claimed length changed; and valid compression of
    /// frames that are themselves broken (so the frame checks, not only LZ4, are reached).
    /// </summary>
    private static readonly Gen<byte[]> s_hostile = Gen.Frequency(
        (2, Gen.Select(Gen.UInt, Gen.Byte.Array[0, 600], (claimed, rest) =>
        {
            var bytes = new byte[4 + rest.Length];
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, claimed % 3 == 0 ? claimed : claimed % (CatchUpBatch.MaxRawBytes + 64));
            rest.CopyTo(bytes, 4);
            return bytes;
        })),
        (4, Gen.Select(s_blocks, Gen.Int[0, 1 << 16].Array[1, 4], Gen.Byte, Gen.Int[0, 3], (blocks, positions, value, how) =>
        {
            byte[] payload = PackedPayload(Frames(blocks));
            foreach (int position in positions)
            {
                switch (how)
                {
                    case 0: payload[position % payload.Length] = value; break;
                    case 1: payload = payload[..(position % payload.Length)]; break;
                    case 2: payload = [.. payload, .. Enumerable.Repeat(value, 1 + position % 64)]; break;
                    default: BinaryPrimitives.WriteUInt32LittleEndian(payload, (uint)position); break;
                }
                if (payload.Length == 0)
                {
                    break;
                }
            }
            return payload;
        })),
        (3, Gen.Select(s_blocks, Gen.Int[0, 1 << 16].Array[1, 3], Gen.Byte, (blocks, positions, value) =>
        {
            byte[] frames = Frames(blocks);
            if (frames.Length > 0)
            {
                foreach (int position in positions)
                {
                    frames[position % frames.Length] = value;
                }
            }
            return PackedPayload(frames);
        })));

    [Test]
    public void Any_bytes_unpack_to_checked_blocks_or_are_refused_with_invalid_data()
    {
        s_hostile.Sample(payload =>
        {
            try
            {
                // Whatever comes out passed the framing and CRC checks; a block's own content is
                // then verified by the chain (not this decoder's job).
                return Unpack(payload).All(block => block.Length <= CatchUpBatch.MaxRawBytes);
            }
            catch (InvalidDataException)
            {
                return true;
            }
        }, seed: FuzzRun.Seed, iter: FuzzRun.Iterations(20_000), print: p => Convert.ToHexString(p.AsSpan(0, Math.Min(p.Length, 64))));
    }
}
