using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;

namespace Engine.Security;

/// <summary>
/// One direction of a <see cref="SecureChannel"/>'s record layer: an AES-256-GCM key and the record
/// counter that is its nonce. The sealing side and the opening side of a direction each hold one with
/// the same key; both count from 0, so a record opens only as the very next one (layout in
/// <see cref="SecureChannel"/>'s remarks). Not thread-safe: the channel seals under its send lock and
/// opens from its one receiver.
/// </summary>
internal sealed class RecordCipher : IDisposable
{
    /// <summary>u32 length, u32 check of the length and the record counter (see <see cref="HeaderCheck"/>).</summary>
    public const int HeaderBytes = 8;
    public const int TagBytes = 16;
    public const int OverheadBytes = HeaderBytes + TagBytes;
    private const int NonceBytes = 12;

    private readonly AesGcm _aes;
    private readonly byte[] _nonce = new byte[NonceBytes];
    private ulong _counter;

    /// <param name="key">32 bytes; zeroed here once the cipher has it.</param>
    public RecordCipher(byte[] key)
    {
        _aes = new AesGcm(key, TagBytes);
        CryptographicOperations.ZeroMemory(key);
    }

    /// <summary>Records sealed or opened so far.</summary>
    public ulong Counter => Volatile.Read(ref _counter);

    /// <summary>Writes the whole record for <paramref name="plaintext"/> (header, ciphertext, tag) at the start of <paramref name="record"/>; returns its length.</summary>
    public int Seal(ReadOnlySpan<byte> plaintext, Span<byte> record)
    {
        if (_counter == ulong.MaxValue)
        {
            throw new IOException("the record counter is exhausted: open a new channel");
        }
        int length = OverheadBytes + plaintext.Length;
        record = record[..length];
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)plaintext.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(record[4..], HeaderCheck((uint)plaintext.Length, _counter));
        BinaryPrimitives.WriteUInt64BigEndian(_nonce.AsSpan(4), _counter);
        _aes.Encrypt(_nonce, plaintext, record.Slice(HeaderBytes, plaintext.Length), record[(HeaderBytes + plaintext.Length)..], record[..HeaderBytes]);
        Volatile.Write(ref _counter, _counter + 1);
        return length;
    }

    /// <summary>
    /// Whether the header of the next record to open is intact; its length if so. Checked before the
    /// body is awaited: a corrupted length would otherwise have the receiver wait for bytes that are
    /// not coming, which looks like a silent peer (a takeover) rather than a corrupt link (a reset).
    /// </summary>
    public bool TryReadHeader(ReadOnlySpan<byte> header, out uint length)
    {
        length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        return BinaryPrimitives.ReadUInt32LittleEndian(header[4..]) == HeaderCheck(length, _counter);
    }

    /// <summary>
    /// CRC-32C of the length and the record counter: catches every accidental change of up to 32 bits
    /// in the header at once. It is no defence against an attacker (who could stall the link by holding
    /// bytes back anyway); the AEAD, whose associated data is the whole header, is.
    /// </summary>
    internal static uint HeaderCheck(uint length, ulong counter) => ~BitOperations.Crc32C(BitOperations.Crc32C(~0u, length), counter);

    /// <summary>Decrypts the next record in place; false (and <paramref name="ciphertext"/> cleared) if it fails authentication. The counter moves only on success.</summary>
    public bool TryOpen(ReadOnlySpan<byte> header, Span<byte> ciphertext, ReadOnlySpan<byte> tag)
    {
        BinaryPrimitives.WriteUInt64BigEndian(_nonce.AsSpan(4), _counter);
        try
        {
            _aes.Decrypt(_nonce, ciphertext, tag, ciphertext, header);
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
        Volatile.Write(ref _counter, _counter + 1);
        return true;
    }

    public void Dispose() => _aes.Dispose();
}
