using System.CommandLine;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Security;

namespace Engine.Cli;

/// <summary>
/// <c>engine log prove</c> (make a transaction's inclusion proof from a journal directory) and
/// <c>engine proof verify</c> (check one offline, with only the ledger's public key).
/// </summary>
internal static class ProofCommands
{
    private const int ExitValid = 0;
    private const int ExitInvalid = 1;
    private const int ExitError = 2;

    /// <summary><c>engine log prove DIR --lsn N [--out FILE]</c>.</summary>
    public static Command Prove()
    {
        var dir = new Argument<DirectoryInfo>("dir") { Description = "The journal directory (holds log.N, commits/ and the ledger-head its primary signed)." };
        var lsn = new Option<ulong>("--lsn") { Description = "The transaction's LSN (its receipt's).", Required = true };
        var output = new Option<FileInfo?>("--out") { Description = "Write the proof here instead of to standard output." };
        var command = new Command("prove",
            "Print the inclusion proof of one transaction as JSON: its record, the Merkle path to the records root that covers its block, the block carrying that root, " +
            "and the path from that block to the newest signed head in DIR (DIR/ledger-head, signed by the primary with the ledger key). Check it with `engine proof verify`. " +
            "Exit 0 with the proof; 1 when there is none yet or the LSN is not in the journal (the reason on standard error); 2 if there is no journal or no signed head.")
        {
            dir,
            lsn,
            output,
        };
        command.SetAction(parse =>
        {
            string path = parse.GetValue(dir)!.FullName;
            if (HeadSigner.TryLoad(path, out string? wrong) is not { } saved)
            {
                Console.Error.WriteLine($"engine log prove: no signed head in '{path}': {wrong} (the primary signs one every SignedHeadIntervalMs when it holds the ledger key)");
                return ExitError;
            }
            try
            {
                using JournalReader reader = JournalReader.Open(path);
                if (InclusionProver.Prove(reader, saved.Head, parse.GetValue(lsn), out string? why) is not { } proof)
                {
                    Console.Error.WriteLine($"engine log prove: {why}");
                    return ExitInvalid;
                }
                Write(proof.ToJsonUtf8(), parse.GetValue(output));
                return ExitValid;
            }
            catch (Exception e) when (e is DirectoryNotFoundException or JournalCorruptException or InvalidDataException or IOException)
            {
                Console.Error.WriteLine($"engine log prove: {e.Message}");
                return ExitError;
            }
        });
        return command;
    }

    /// <summary><c>engine log consistency DIR --old-head HEX [--new-head HEX] [--out FILE]</c>.</summary>
    public static Command Consistency()
    {
        var dir = new Argument<DirectoryInfo>("dir") { Description = "The journal directory (with its archive, and the ledger-head its primary signed)." };
        var oldHead = new Option<string>("--old-head") { Description = "The signed head the auditor kept, in hex (an inclusion proof's \"head\", or /status's ledger.head then).", Required = true };
        var newHead = new Option<string?>("--new-head") { Description = "The later signed head, in hex (default: the newest, DIR/ledger-head)." };
        var output = new Option<FileInfo?>("--out") { Description = "Write the proof here instead of to standard output." };
        var command = new Command("consistency",
            "Print, as JSON, the proof that a later signed head extends an earlier one: the tree of block hashes the old head signed is a prefix of the new head's, so the ledger " +
            "was only appended to since. Check it with `engine proof verify`. Exit 0 with the proof; 1 when there is none (the old head is not this ledger's prefix: the reason " +
            "on standard error); 2 if an argument, the journal or the signed head cannot be read.")
        {
            dir,
            oldHead,
            newHead,
            output,
        };
        command.SetAction(parse =>
        {
            string path = parse.GetValue(dir)!.FullName;
            SignedHead older, newer;
            try
            {
                older = ReadHead(parse.GetValue(oldHead)!, "--old-head");
                if (parse.GetValue(newHead) is { } hex)
                {
                    newer = ReadHead(hex, "--new-head");
                }
                else if (HeadSigner.TryLoad(path, out string? wrong) is { } saved)
                {
                    newer = saved.Head;
                }
                else
                {
                    throw new ArgumentException($"no signed head in '{path}': {wrong}; give --new-head");
                }
            }
            catch (Exception e) when (e is ArgumentException or FormatException)
            {
                Console.Error.WriteLine($"engine log consistency: {e.Message}");
                return ExitError;
            }
            try
            {
                using JournalReader reader = JournalReader.Open(path);
                if (InclusionProver.ProveConsistency(reader, older, newer, out string? why) is not { } proof)
                {
                    Console.Error.WriteLine($"engine log consistency: {why}");
                    return ExitInvalid;
                }
                Write(proof.ToJsonUtf8(), parse.GetValue(output));
                return ExitValid;
            }
            catch (Exception e) when (e is DirectoryNotFoundException or JournalCorruptException or InvalidDataException or IOException)
            {
                Console.Error.WriteLine($"engine log consistency: {e.Message}");
                return ExitError;
            }
        });
        return command;
    }

    private static SignedHead ReadHead(string hex, string option)
    {
        byte[] bytes = Convert.FromHexString(hex.Trim());
        return SignedHead.TryRead(bytes, out string? wrong) ?? throw new ArgumentException($"{option}: not a signed head: {wrong}");
    }

    private static void Write(byte[] json, FileInfo? file)
    {
        if (file is not null)
        {
            File.WriteAllBytes(file.FullName, [.. json, (byte)'\n']);
        }
        else
        {
            using Stream stdout = Console.OpenStandardOutput();
            stdout.Write(json);
            stdout.Write("\n"u8);
        }
    }

    /// <summary><c>engine proof verify FILE [--key HEX | --cluster cluster.json]</c>.</summary>
    public static Command Build()
    {
        var proof = new Command("proof", "Proofs of the ledger (a transaction's inclusion, two heads' consistency): check one offline.");
        var file = new Argument<FileInfo>("file") { Description = "The proof (JSON, from `engine log prove` or `engine log consistency`); - reads standard input." };
        var key = new Option<string?>("--key") { Description = "The ledger's public key, 64 hex digits (cluster.json's ledger_public_key)." };
        var cluster = new Option<FileInfo?>("--cluster") { Description = "The cluster's cluster.json: its ledger_public_key is the key." };
        var verify = new Command("verify",
            "Check an inclusion proof offline: the record is the transaction with the proof's LSN, its Merkle path leads to the records root in the block it names, that block's hash is " +
            "its content's, the block is in the tree of the signed head, and the head is signed by the ledger key (--key or --cluster; without either, only a proof of the " +
            "development cluster is checked, against its built-in key). A consistency proof: both heads are signed by the ledger key and the old head's tree is a prefix of the new one's. " +
            "Exit 0 valid, 1 invalid (the reason), 2 if the proof or the key cannot be read.")
        {
            file,
            key,
            cluster,
        };
        verify.SetAction(parse =>
        {
            byte[] bytes;
            try
            {
                FileInfo path = parse.GetValue(file)!;
                bytes = path.Name == "-" ? ReadStdin() : ReadBounded(path.FullName);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
            {
                Console.Error.WriteLine($"engine proof verify: {e.Message}");
                return ExitError;
            }
            if (bytes.AsSpan().IndexOf(System.Text.Encoding.UTF8.GetBytes($"\"{ConsistencyProof.Format}\"")) >= 0)
            {
                return VerifyConsistency(bytes, parse.GetValue(key), parse.GetValue(cluster));
            }
            if (InclusionProof.TryParse(bytes, out string? wrong) is not { } parsed)
            {
                Console.Error.WriteLine($"engine proof verify: not a proof: {wrong}");
                return ExitInvalid;
            }
            return Check(parse.GetValue(key), parse.GetValue(cluster), parsed.ClusterId, parsed.Verify,
                publicKey => $"valid: LSN {parsed.Lsn} (block {parsed.Block}) is in the ledger of cluster {parsed.ClusterId.Describe()} under the {parsed.Head} signed by {Convert.ToHexStringLower(publicKey)}");
        });
        proof.Subcommands.Add(verify);
        return proof;
    }

    private static int VerifyConsistency(byte[] bytes, string? key, FileInfo? cluster)
    {
        if (ConsistencyProof.TryParse(bytes, out string? wrong) is not { } parsed)
        {
            Console.Error.WriteLine($"engine proof verify: not a consistency proof: {wrong}");
            return ExitInvalid;
        }
        return Check(key, cluster, parsed.ClusterId, parsed.Verify,
            publicKey => $"valid: the {parsed.NewHead} extends the {parsed.OldHead} (cluster {parsed.ClusterId.Describe()}, both signed by {Convert.ToHexStringLower(publicKey)})");
    }

    /// <summary>Checks a parsed proof with the ledger key the flags name (or the development one): prints why it is invalid, or <paramref name="valid"/>; the exit code.</summary>
    private static int Check(string? key, FileInfo? cluster, ClusterId of, Func<Func<byte[], byte[], bool>, string?> verify, Func<byte[], string> valid)
    {
        byte[] publicKey;
        try
        {
            publicKey = LedgerPublicKey(key, cluster, of)
                ?? throw new ArgumentException($"the proof is of cluster {of}: give its ledger key (--key, or --cluster with its cluster.json)");
        }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException or FormatException)
        {
            Console.Error.WriteLine($"engine proof verify: {e.Message}");
            return ExitError;
        }
        if (verify((signed, signature) => LedgerKey.VerifyHead(publicKey, signed, signature)) is { } invalid)
        {
            Console.WriteLine($"INVALID: {invalid}");
            return ExitInvalid;
        }
        Console.WriteLine(valid(publicKey));
        return ExitValid;
    }

    /// <summary>
    /// The ledger public key to check with: <paramref name="hex"/> (--key), or the roster's in
    /// <paramref name="cluster"/> (--cluster), or, for the development cluster, its built-in key; null
    /// when none applies.
    /// </summary>
    internal static byte[]? LedgerPublicKey(string? hex, FileInfo? cluster, ClusterId? of)
    {
        if (hex is not null && cluster is not null)
        {
            throw new ArgumentException("--key or --cluster, not both");
        }
        if (hex is not null)
        {
            byte[] key = Convert.FromHexString(hex);
            return key.Length == LedgerKey.PublicKeyBytes ? key : throw new ArgumentException($"--key: {LedgerKey.PublicKeyBytes} bytes (64 hex digits) expected");
        }
        if (cluster is not null)
        {
            return ClusterRoster.Load(cluster.FullName).LedgerPublicKey.ToArray();
        }
        if (of is not { IsDevelopment: true })
        {
            return null;
        }
        using LedgerKey development = LedgerKey.Development();
        return development.PublicKey.ToArray();
    }

    private static byte[] ReadBounded(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"{path}: no such file", path);
        }
        return info.Length > InclusionProof.MaxJsonBytes
            ? throw new InvalidDataException($"{path}: {info.Length:N0} bytes is larger than any proof ({InclusionProof.MaxJsonBytes:N0})")
            : File.ReadAllBytes(path);
    }

    private static byte[] ReadStdin()
    {
        using Stream stdin = Console.OpenStandardInput();
        using var buffer = new MemoryStream();
        var chunk = new byte[64 << 10];
        int read;
        while ((read = stdin.Read(chunk)) > 0)
        {
            if (buffer.Length + read > InclusionProof.MaxJsonBytes)
            {
                throw new InvalidDataException($"more than {InclusionProof.MaxJsonBytes:N0} bytes on standard input: larger than any proof");
            }
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }
}
