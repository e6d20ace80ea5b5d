using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Engine.Ledger;

/// <summary>
/// SHA-256 of a short input (a Merkle leaf or node: 65 bytes), as fast as this machine allows.
/// </summary>
/// <remarks>
/// <para>.NET's <see cref="SHA256.HashData(ReadOnlySpan{byte}, Span{byte})"/> costs ~575 ns for 65
/// bytes here (measured 2026-12-05, AMD EPYC with SHA-NI): OpenSSL 3's one-shot and EVP paths look
/// up the algorithm's provider on every call, which for a small input is nearly all the cost (a
/// 64 KiB bulk hash costs 41 ns per 65 bytes). A Merkle tree hashes two small inputs per record, so
/// that overhead decided whether the records-root builder keeps up with the pipeline. OpenSSL's
/// low-level <c>SHA256_Init/Update/Final</c> (deprecated in 3.0, still exported by every build) skip
/// the lookup and run the same SHA-NI code: ~90 ns for 65 bytes, called without a GC transition
/// (they neither block nor call back).</para>
/// <para>Used only when libcrypto exports them and a self-test against the managed hash passes at
/// start; otherwise every call goes to <see cref="SHA256.HashData(ReadOnlySpan{byte}, Span{byte})"/>.
/// Same bytes either way.</para>
/// </remarks>
internal static unsafe class SmallSha256
{
    private const int ContextBytes = 128; // sizeof(SHA256_CTX) is 112

    private static readonly delegate* unmanaged[Cdecl, SuppressGCTransition]<byte*, int> s_init;
    private static readonly delegate* unmanaged[Cdecl, SuppressGCTransition]<byte*, byte*, nuint, int> s_update;
    private static readonly delegate* unmanaged[Cdecl, SuppressGCTransition]<byte*, byte*, int> s_final;

    /// <summary>Whether the OpenSSL low-level functions are in use (false: the managed hash).</summary>
    public static bool Native { get; }

    static SmallSha256()
    {
        foreach (string name in (ReadOnlySpan<string>)["libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"])
        {
            if (NativeLibrary.TryLoad(name, typeof(SmallSha256).Assembly, null, out IntPtr library)
                && NativeLibrary.TryGetExport(library, "SHA256_Init", out IntPtr init)
                && NativeLibrary.TryGetExport(library, "SHA256_Update", out IntPtr update)
                && NativeLibrary.TryGetExport(library, "SHA256_Final", out IntPtr final))
            {
                s_init = (delegate* unmanaged[Cdecl, SuppressGCTransition]<byte*, int>)init;
                s_update = (delegate* unmanaged[Cdecl, SuppressGCTransition]<byte*, byte*, nuint, int>)update;
                s_final = (delegate* unmanaged[Cdecl, SuppressGCTransition]<byte*, byte*, int>)final;
                Native = SelfTest();
                if (Native)
                {
                    return;
                }
            }
        }
    }

    /// <summary>SHA-256 of <paramref name="data"/> into <paramref name="hash"/> (32 bytes).</summary>
    public static void Hash(ReadOnlySpan<byte> data, Span<byte> hash)
    {
        if (!Native)
        {
            SHA256.HashData(data, hash);
            return;
        }
        byte* context = stackalloc byte[ContextBytes];
        fixed (byte* input = data)
        fixed (byte* output = hash)
        {
            if (s_init(context) != 1 || s_update(context, input, (nuint)data.Length) != 1 || s_final(output, context) != 1)
            {
                SHA256.HashData(data, hash); // cannot happen for in-memory input; never a wrong hash if it does
            }
        }
    }

    private static bool SelfTest()
    {
        try
        {
            Span<byte> input = stackalloc byte[200];
            Span<byte> native = stackalloc byte[32];
            Span<byte> managed = stackalloc byte[32];
            byte* context = stackalloc byte[ContextBytes];
            for (int length = 0; length <= input.Length; length += 13)
            {
                input[..length].Fill((byte)length);
                fixed (byte* i = input)
                fixed (byte* o = native)
                {
                    if (s_init(context) != 1 || s_update(context, i, (nuint)length) != 1 || s_final(o, context) != 1)
                    {
                        return false;
                    }
                }
                SHA256.HashData(input[..length], managed);
                if (!native.SequenceEqual(managed))
                {
                    return false;
                }
            }
            return true;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException or BadImageFormatException)
        {
            return false;
        }
    }
}
