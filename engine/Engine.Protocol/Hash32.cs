using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Engine.Protocol;

/// <summary>A SHA-256 digest held inline (no array): block hashes, chain heads, receipts.</summary>
[InlineArray(Bytes)]
public struct Hash32 : IEquatable<Hash32>
{
    public const int Bytes = 32;

    private byte _first;

    /// <summary>All zeros: the previous hash of the genesis block.</summary>
    public static Hash32 Zero => default;

    public static Hash32 From(ReadOnlySpan<byte> bytes)
    {
        var hash = default(Hash32);
        bytes[..Bytes].CopyTo(hash);
        return hash;
    }

    public readonly bool Equals(Hash32 other) =>
        MemoryMarshal.CreateReadOnlySpan(in _first, Bytes).SequenceEqual(MemoryMarshal.CreateReadOnlySpan(in other._first, Bytes));

    public override readonly bool Equals(object? obj) => obj is Hash32 other && Equals(other);

    public override readonly int GetHashCode() => MemoryMarshal.Read<int>(MemoryMarshal.CreateReadOnlySpan(in _first, Bytes));

    public static bool operator ==(Hash32 left, Hash32 right) => left.Equals(right);

    public static bool operator !=(Hash32 left, Hash32 right) => !left.Equals(right);

    /// <summary>Lower-case hex, 64 characters.</summary>
    public override readonly string ToString() => Convert.ToHexStringLower(MemoryMarshal.CreateReadOnlySpan(in _first, Bytes));

    /// <summary>The first 8 bytes in hex: enough to tell heads apart in logs.</summary>
    public readonly string ToShortString() => ToString()[..16];

    public static Hash32 Parse(string hex) => From(Convert.FromHexString(hex));
}
