using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;

namespace Engine.Cli;

/// <summary><c>engine log …</c>: verify, dump and generate journals.</summary>
internal static class LogCommands
{
    private const int ExitIntact = 0;
    private const int ExitCorrupt = 1;
    private const int ExitError = 2;

    public static Command Build()
    {
        var log = new Command("log", "Work with a journal directory: verify its hash chain, dump its transactions, generate a synthetic one, prove a transaction's inclusion.");
        log.Subcommands.Add(Verify());
        log.Subcommands.Add(Dump());
        log.Subcommands.Add(Generate());
        log.Subcommands.Add(ProofCommands.Prove());
        log.Subcommands.Add(ProofCommands.Consistency());
        return log;
    }

    private static Argument<DirectoryInfo> DirArgument() => new("dir") { Description = "The journal directory (holds log.N and commits/)." };

    private static Option<bool> JsonOption() => new("--json") { Description = "Machine-readable output (JSON)." };

    private static Option<string> ClusterIdOption(string description) => new("--cluster-id") { Description = description };

    private static Command Verify()
    {
        var dir = DirArgument();
        var json = JsonOption();
        var cluster = ClusterIdOption("The cluster the journal must belong to (32 hex digits; 00…0 is the development cluster). Default: whatever its genesis names.");
        var command = new Command("verify",
            "Re-hash the whole chain from the genesis block to the committed end (block format 2, or 1 from before cluster ids), checking every block's format, " +
            "through DIR/archive and on into the journal from its base when the journal was compacted (from the base alone when the blocks before it are not here), " +
            "kinds, reserved bytes and cluster id, and recomputing every records-root section's Merkle root (sections must cover the blocks in order, without a gap or an overlap). " +
            "Exit 0 if intact, 1 naming the first bad block, 2 if there is no journal.")
        {
            dir,
            json,
            cluster,
        };
        command.SetAction(parse =>
        {
            string path = parse.GetValue(dir)!.FullName;
            bool asJson = parse.GetValue(json);
            ClusterId? expected = null;
            if (parse.GetValue(cluster) is { } hex)
            {
                if (!ClusterId.TryParse(hex, out ClusterId id))
                {
                    Console.Error.WriteLine($"engine log verify: --cluster-id takes 32 hex digits, not '{hex}'");
                    return ExitError;
                }
                expected = id;
            }
            try
            {
                using JournalReader reader = JournalReader.Open(path);
                if (reader.Unrecovered)
                {
                    Console.Error.WriteLine($"engine log verify: warning: no commit record of '{path}' could be read, so it reads as empty (a node still writing it? stop it first)");
                }
                VerifyReport report = reader.Verify(expected);
                if (asJson)
                {
                    Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
                    {
                        ["dir"] = path,
                        ["intact"] = report.Intact,
                        ["blocks"] = report.Blocks,
                        ["transactions"] = report.Transactions,
                        ["bytes"] = report.Bytes,
                        ["archived_blocks"] = report.ArchivedBlocks,
                        ["started_at_base"] = report.StartedAtBase,
                        ["format_version"] = report.FormatVersion,
                        ["roots_cover_first_block"] = report.RootsCover?.First,
                        ["roots_cover_last_block"] = report.RootsCover?.Last,
                        ["roots_checked"] = report.RootsChecked,
                        ["roots_unchecked"] = report.RootsUnchecked,
                        ["cluster_id"] = report.FormatVersion == BlockFormat.Version1 ? null : report.ClusterId?.ToString(),
                        ["head_block"] = report.Head?.BlockNo,
                        ["head_lsn"] = report.Head?.LastLsn,
                        ["head_epoch"] = report.Head?.Epoch,
                        ["head_hash"] = report.Head?.Hash.ToString(),
                        ["seconds"] = Math.Round(report.Elapsed.TotalSeconds, 6),
                        ["bytes_per_sec"] = Math.Round(report.BytesPerSecond),
                        ["fault"] = report.Fault is null ? null : new Dictionary<string, object>
                        {
                            ["block"] = report.Fault.BlockNo,
                            ["address"] = report.Fault.Address,
                            ["reason"] = report.Fault.Reason,
                        },
                    }));
                }
                else
                {
                    PrintReport(path, report);
                }
                return report.Intact ? ExitIntact : ExitCorrupt;
            }
            catch (Exception e) when (e is DirectoryNotFoundException or JournalCorruptException)
            {
                Console.Error.WriteLine($"engine log verify: {e.Message}");
                return e is JournalCorruptException ? ExitCorrupt : ExitError;
            }
        });
        return command;
    }

    private static void PrintReport(string path, VerifyReport report)
    {
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine(report.Intact ? $"journal {path}: intact" : $"journal {path}: BROKEN");
        Console.WriteLine(report.StartedAtBase is { } baseBlock
            ? string.Create(c, $"  blocks        {report.Blocks:N0} verified from block {baseBlock:N0}: the blocks before it are not here (compacted without an archive, or the journal was installed from a snapshot there), and that block is taken as journal.json named it")
            : string.Create(c, $"  blocks        {report.Blocks:N0} verified (genesis included{(report.ArchivedBlocks > 0 ? $"; {report.ArchivedBlocks:N0} of them from the archive" : "")})"));
        Console.WriteLine(string.Create(c, $"  transactions  {report.Transactions:N0}"));
        Console.WriteLine(string.Create(c, $"  bytes         {report.Bytes:N0} up to committed address {report.CommittedUntil:N0}"));
        if (report.FormatVersion != 0)
        {
            Console.WriteLine(report.FormatVersion == BlockFormat.Version1
                ? "  format        block format 1 (from before cluster ids: read for audit, never continued)"
                : $"  format        block format {report.FormatVersion}");
        }
        if (report.FormatVersion == BlockFormat.Version && report.ClusterId is { } clusterId)
        {
            Console.WriteLine($"  cluster       {clusterId.Describe()}");
        }
        Console.WriteLine(report.RootsCover is { } cover
            ? string.Create(c, $"  roots         records roots cover blocks {cover.First:N0}…{cover.Last:N0}: {report.RootsChecked:N0} recomputed and matched{(report.RootsUnchecked > 0 ? $", {report.RootsUnchecked:N0} over blocks before the verification's start (not recomputed)" : "")}")
            : "  roots         no records-root section (written before roots, or by a node running without them)");
        if (report.Head is { } head)
        {
            Console.WriteLine(string.Create(c, $"  head          block {head.BlockNo:N0}, lsn {head.LastLsn:N0}, epoch {head.Epoch}"));
            Console.WriteLine($"  head hash     {head.Hash}");
        }
        Console.WriteLine(string.Create(c, $"  rate          {report.BytesPerSecond / 1e9:F2} GB/s ({report.Elapsed.TotalMilliseconds:F1} ms)"));
        if (report.Fault is { } fault)
        {
            Console.WriteLine($"  first bad     {fault}");
        }
    }

    private static Command Dump()
    {
        var dir = DirArgument();
        var from = new Option<ulong>("--from") { Description = "First LSN to print.", DefaultValueFactory = _ => 1 };
        var count = new Option<long>("--count") { Description = "How many transactions to print at most (default: all).", DefaultValueFactory = _ => long.MaxValue };
        var json = JsonOption();
        var command = new Command("dump", "Print the journal's transactions in LSN order: readable lines with block headers, or one JSON object per transaction.")
        {
            dir,
            from,
            count,
            json,
        };
        command.SetAction(parse =>
        {
            if (parse.GetValue(count) < 0)
            {
                Console.Error.WriteLine("engine log dump: --count must not be negative");
                return ExitError;
            }
            string path = parse.GetValue(dir)!.FullName;
            ulong first = parse.GetValue(from);
            long remaining = parse.GetValue(count);
            bool asJson = parse.GetValue(json);
            try
            {
                using JournalReader reader = JournalReader.Open(path);
                using Stream stdout = Console.OpenStandardOutput();
                using var writer = new Utf8JsonWriter(stdout);
                using var text = new StreamWriter(stdout, leaveOpen: true) { AutoFlush = false };
                string? error = null;
                ushort version = 0;
                reader.Scan((entry, address) =>
                {
                    // The chain's version is its first block's; a block of another is refused
                    // here as by the verifier (a chain never changes version).
                    string? shape = BlockFormat.TryReadHeader(entry, out BlockHeader header, acceptVersion1: version is 0 or BlockFormat.Version1);
                    if (shape is null && version != 0 && header.Version != version)
                    {
                        shape = $"block format version {header.Version} in a chain of version {version}";
                    }
                    if (shape is not null)
                    {
                        error = $"entry at address {address} is not a block: {shape} (run 'engine log verify')";
                        return false;
                    }
                    if (version == 0)
                    {
                        version = header.Version;
                        if (!asJson)
                        {
                            text.WriteLine(header.Version == BlockFormat.Version1
                                ? $"journal {path}: block format 1 (no cluster id)"
                                : $"journal {path}: block format {header.Version}, cluster {header.ClusterId.Describe()}");
                        }
                    }
                    if (header.Count == 0 || header.LastLsn < first)
                    {
                        return true;
                    }
                    if (!asJson)
                    {
                        text.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"block {header.BlockNo} epoch {header.Epoch} lsn {header.FirstLsn}-{header.LastLsn} at {DateTimeOffset.UnixEpoch.AddTicks(header.TimestampNs / 100):O} prev {header.PrevHash.ToShortString()} hash {BlockFormat.StoredHash(entry, in header).ToShortString()}"));
                    }
                    var records = BlockRecords.Of(entry, in header);
                    string? refused = null;
                    while (remaining > 0 && records.TryMoveNext(out refused))
                    {
                        BlockRecord record = records.Current;
                        ulong lsn = record.Lsn;
                        if (lsn < first)
                        {
                            continue;
                        }
                        record.Read(out Transaction tx);
                        remaining--;
                        if (asJson)
                        {
                            WriteJson(writer, lsn, header.BlockNo, in tx);
                            writer.Flush();
                            writer.Reset();
                            stdout.WriteByte((byte)'\n');
                        }
                        else
                        {
                            text.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  lsn {lsn}  {tx}"));
                        }
                    }
                    if (refused is not null)
                    {
                        error = $"block {header.BlockNo}, {refused} (run 'engine log verify')";
                        return false;
                    }
                    return remaining > 0;
                });
                text.Flush();
                if (error is not null)
                {
                    Console.Error.WriteLine($"engine log dump: {error}");
                    return ExitCorrupt;
                }
                return 0;
            }
            catch (Exception e) when (e is DirectoryNotFoundException or JournalCorruptException)
            {
                Console.Error.WriteLine($"engine log dump: {e.Message}");
                return ExitError;
            }
        });
        return command;
    }

    private static void WriteJson(Utf8JsonWriter writer, ulong lsn, ulong blockNo, in Transaction tx)
    {
        writer.WriteStartObject();
        writer.WriteNumber("lsn", lsn);
        writer.WriteNumber("block", blockNo);
        writer.WriteString("kind", KindName(tx.Kind));
        if (AdminTransaction.IsAdmin(tx.Kind))
        {
            // An operator's: its fields say what each kind means (AdminTransaction), the text says it in words.
            writer.WriteString("admin", AdminTransaction.Describe(in tx));
        }
        writer.WriteNumber("client_id", tx.ClientId);
        writer.WriteNumber("client_seq", tx.ClientSeq);
        writer.WriteNumber("account", tx.Account);
        writer.WriteNumber("instrument", tx.Instrument);
        writer.WriteNumber("client_order_id", tx.ClientOrderId);
        if (tx.Kind != MessageType.NewOrder)
        {
            writer.WriteNumber("orig_client_order_id", tx.OrigClientOrderId);
        }
        if (tx.Kind == MessageType.NewOrder)
        {
            writer.WriteString("side", tx.Side.ToString().ToLowerInvariant());
            writer.WriteString("type", tx.Type.ToString().ToLowerInvariant());
            writer.WriteString("tif", tx.TimeInForce.ToString().ToLowerInvariant());
        }
        if (tx.Kind != MessageType.Cancel)
        {
            writer.WriteNumber("price", tx.Price);
            writer.WriteNumber("quantity", tx.Quantity);
        }
        writer.WriteEndObject();
    }

    /// <summary>The record kind's name, as dump prints it (text and JSON).</summary>
    internal static string KindName(MessageType kind) =>
        kind switch
        {
            MessageType.NewOrder => "new_order",
            MessageType.Cancel => "cancel",
            MessageType.Replace => "replace",
            _ => System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(kind.ToString()),
        };

    private static Command Generate()
    {
        var dir = DirArgument();
        var count = new Option<long>("--count") { Description = "Requests to submit (about 1% are invalid and get rejected).", DefaultValueFactory = _ => 100_000 };
        var durability = new Option<Durability>("--durability") { Description = "When a block counts as journaled: memory or disk.", DefaultValueFactory = _ => Durability.Memory };
        var seed = new Option<int>("--seed") { Description = "Seed of the synthetic order flow.", DefaultValueFactory = _ => 42 };
        var report = new Option<bool>("--report-durable") { Description = "Print 'durable BLOCK HASH' for every block once it is journaled." };
        var cluster = ClusterIdOption("The cluster a new journal's genesis names (32 hex digits); an existing journal must be of it. Default: the development cluster (all zeros).");
        var command = new Command("generate",
            "Write synthetic orders through the real pipeline (validate, seal, journal, records roots) into a journal: test data for verify, dump, prove and drills; a journal of the " +
            "development cluster also gets a head signed with its built-in ledger key. Appends if the journal exists.")
        {
            dir,
            count,
            durability,
            seed,
            report,
            cluster,
        };
        command.SetAction(parse =>
        {
            // Checked here, not in a validator: validators do not see option defaults.
            if (parse.GetValue(count) < 1)
            {
                Console.Error.WriteLine("engine log generate: --count must be at least 1");
                return ExitError;
            }
            string path = parse.GetValue(dir)!.FullName;
            bool reportDurable = parse.GetValue(report);
            ClusterId clusterId = ClusterId.Development;
            if (parse.GetValue(cluster) is { } hex && !ClusterId.TryParse(hex, out clusterId))
            {
                Console.Error.WriteLine($"engine log generate: --cluster-id takes 32 hex digits, not '{hex}'");
                return ExitError;
            }
            try
            {
                using Journal journal = Journal.Open(new JournalSettings { Directory = path, Durability = parse.GetValue(durability), ClusterId = clusterId });
                Console.Error.WriteLine($"engine log generate: {journal.Settings}; continuing after {journal.Head}");
                Action<SealedBlock>? onDurable = reportDurable
                    ? block => Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"durable {block.BlockNo} {block.Hash}"))
                    : null;
                LedgerRunResult result = SyntheticLedgerRun.Run(journal, parse.GetValue(count), new RingSettings { Size = 1 << 14 }, parse.GetValue(seed), onDurable,
                    rootsEveryRequests: 10_000);
                if (clusterId.IsDevelopment)
                {
                    // As a development node does: a head over every block, signed with the development cluster's ledger key.
                    using var key = Security.LedgerKey.Development();
                    using var heads = new HeadSigner(journal, new HeadSigning(key.PublicKey.ToArray(), head => key.SignHead(head)), TimeSpan.Zero);
                    heads.Poll();
                    Console.Error.WriteLine($"engine log generate: signed the {heads.Latest}");
                }
                Console.Out.Flush();
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"engine log generate: {result.Submitted:N0} submitted, {result.Accepted:N0} journaled in {result.Blocks:N0} blocks, {result.Rejected:N0} rejected, {result.TransactionsPerSecond / 1e6:F2} M tx/s"));
                return 0;
            }
            catch (JournalCorruptException e)
            {
                Console.Error.WriteLine($"engine log generate: {e.Message}");
                return ExitCorrupt;
            }
        });
        return command;
    }
}
