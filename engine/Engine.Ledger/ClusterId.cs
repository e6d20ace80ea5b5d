using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Engine.Ledger;

/// <summary>
/// A cluster's identity: 16 bytes, made once when the cluster is created (random), written into
/// every block header so that two clusters' chains never share a block and a journal is never
/// continued under another cluster's name.
/// </summary>
/// <remarks>
/// Held as two 64-bit halves (the bytes as they lie in a header, read little-endian) so that the
/// per-block comparison is two compares. Its text form is the 16 bytes in header order as 32
/// lower-case hex digits. All zeros is <see cref="Development"/>: the identity of a journal made
/// without cluster credentials (tests, the demo, a node on loopback).
/// </remarks>
public readonly struct ClusterId : IEquatable<ClusterId>
{
    public const int Bytes = 16;

    private readonly ulong _low;
    private readonly ulong _high;

    private ClusterId(ulong low, ulong high)
    {
        _low = low;
        _high = high;
    }

    /// <summary>All zeros: the development cluster (no credentials).</summary>
    public static ClusterId Development => default;

    public bool IsDevelopment => _low == 0 && _high == 0;

    /// <summary>The id stored in <paramref name="bytes"/> (at least 16 bytes; the first 16 are taken).</summary>
    public static ClusterId From(ReadOnlySpan<byte> bytes) =>
        new(BinaryPrimitives.ReadUInt64LittleEndian(bytes), BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..Bytes]));

    /// <summary>A fresh random id, for a new cluster.</summary>
    public static ClusterId NewRandom()
    {
        Span<byte> bytes = stackalloc byte[Bytes];
        RandomNumberGenerator.Fill(bytes);
        return From(bytes);
    }

    /// <summary>Parses 32 hex digits (the form <see cref="ToString"/> writes; either case).</summary>
    /// <exception cref="FormatException">Not 32 hex digits.</exception>
    public static ClusterId Parse(string hex) =>
        TryParse(hex, out ClusterId id) ? id : throw new FormatException($"a cluster id is 32 hex digits (16 bytes), not '{hex}'");

    public static bool TryParse(string? hex, out ClusterId id)
    {
        id = default;
        if (hex is null || hex.Length != 2 * Bytes)
        {
            return false;
        }
        Span<byte> bytes = stackalloc byte[Bytes];
        if (Convert.FromHexString(hex, bytes, out _, out int written) != System.Buffers.OperationStatus.Done || written != Bytes)
        {
            return false;
        }
        id = From(bytes);
        return true;
    }

    /// <summary>Writes the 16 bytes, in header order, to the start of <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, _low);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..Bytes], _high);
    }

    public bool Equals(ClusterId other) => _low == other._low && _high == other._high;

    public override bool Equals(object? obj) => obj is ClusterId other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(_low, _high);

    public static bool operator ==(ClusterId left, ClusterId right) => left.Equals(right);

    public static bool operator !=(ClusterId left, ClusterId right) => !left.Equals(right);

    /// <summary>32 lower-case hex digits, the bytes in header order.</summary>
    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[Bytes];
        WriteTo(bytes);
        return Convert.ToHexStringLower(bytes);
    }

    /// <summary>The hex form, or "development" plus it for the all-zero id: what logs and tools print.</summary>
    public string Describe() => IsDevelopment ? $"{this} (development)" : ToString();
}
