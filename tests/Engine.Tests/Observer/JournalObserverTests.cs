using Engine.Cli.Observer;
using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Core.Ring;
using Engine.Protocol;
using Engine.Security;
using Engine.Tests.Shared;
using Engine.Tests.Support;
using Microsoft.Data.Sqlite;

namespace Engine.Tests.Observer;

/// <summary>
/// The observer on a real journal and a real SQLite file: its tables agree with an independent
/// replay of the ledger, a load resumed after more blocks equals one load of the whole, and a
/// database of another history or a journal that does not verify stops it.
/// </summary>
public class JournalObserverTests
{
    private TempDirectory _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempDirectory("observer");

    [TearDown]
    public void TearDown()
    {
        SqliteConnection.ClearAllPools();
        _temp.Dispose();
    }

    private string Generate(string name, long count, int seed)
    {
        string dir = _temp.Sub(name);
        using Journal journal = Journal.Open(new JournalSettings { Directory = dir, Durability = Durability.Memory, MaxTransactionsPerBlock = 50 });
        SyntheticLedgerRun.Run(journal, count, new RingSettings { Size = 1 << 12 }, seed, rootsEveryRequests: 2_000);
        return dir;
    }

    private static ObserveReport Load(string journal, string database, Func<byte[], byte[], bool>? verifyHead = null)
    {
        using var store = new SqliteObserverStore(database);
        return JournalObserver.Load(journal, store, _ => { }, verifyHead);
    }

    private static void SignHead(string journalDirectory, LedgerKey key)
    {
        using Journal journal = Journal.Open(new JournalSettings { Directory = journalDirectory, Durability = Durability.Memory, MaxTransactionsPerBlock = 50 });
        using var heads = new HeadSigner(journal, new HeadSigning(key.PublicKey.ToArray(), head => key.SignHead(head)), TimeSpan.Zero);
        heads.Poll();
    }

    [Test]
    public void The_signed_head_beside_the_journal_is_checked_against_the_key_and_the_blocks()
    {
        using var key = LedgerKey.Development();
        Func<byte[], byte[], bool> byKey = (signed, signature) => LedgerKey.VerifyHead(key.PublicKey, signed, signature);
        string a = Generate("a", 3_000, seed: 1);
        SignHead(a, key);
        Assert.That(Load(a, Path.Combine(_temp.Path, "a.db"), byKey).HeadChecked, Is.Not.Null, "signed by the key, the root of the blocks");
        Assert.That(() => Load(a, Path.Combine(_temp.Path, "a2.db"), (_, _) => false), Throws.TypeOf<ObserverFaultException>().With.Message.Contains("not signed by the ledger key"));

        string b = Generate("b", 9_000, seed: 2); // more blocks than a's head covers, other ones
        File.Copy(HeadSigner.PathIn(a), HeadSigner.PathIn(b));
        Assert.That(() => Load(b, Path.Combine(_temp.Path, "b.db"), byKey), Throws.TypeOf<ObserverFaultException>().With.Message.Contains("is not the root of this journal's blocks"));

        SignHead(b, key); // b's own head, over more blocks than a holds
        File.Copy(HeadSigner.PathIn(b), HeadSigner.PathIn(a), overwrite: true);
        Assert.That(() => Load(a, Path.Combine(_temp.Path, "a3.db"), byKey), Throws.TypeOf<ObserverFaultException>().With.Message.Contains("blocks it signed are not here"));
    }

    /// <summary>Counts what a replay of the journal gives, independently of the observer's sink.</summary>
    private struct Tally : IExecutionSink
    {
        public long AcceptedCount;
        public long RejectedCount;
        public HashSet<ulong> Trades;

        public void Accepted(in Transaction tx, ulong lsn, ulong blockNo, in Hash32 blockHash) => AcceptedCount++;

        public void Rejected(in Transaction tx, RejectReason reason, ulong lsn) => RejectedCount++;

        public readonly void Execution(in ExecutionReport report)
        {
            if (report.TradeId != 0)
            {
                Trades.Add(report.TradeId);
            }
        }
    }

    private static (Tally Tally, int OpenOrders, long Blocks) Replay(string journal)
    {
        var applier = new BlockApplier(new Exchange());
        var tally = new Tally { Trades = [] };
        long blocks = 0;
        using JournalReader reader = JournalReader.Open(journal);
        reader.Scan((entry, _) =>
        {
            blocks++;
            var records = BlockRecords.Open(entry);
            if (records.Header.Kind == BlockKind.Transactions)
            {
                applier.ApplyBlock(records, ref tally);
            }
            return true;
        });
        return (tally, applier.Exchange.OpenOrders, blocks);
    }

    private static long Scalar(string database, string sql)
    {
        using var connection = new SqliteConnection($"Data Source={database};Pooling=False");
        connection.Open();
        using SqliteCommand command = connection.CreateCommand();
        command.CommandText = sql;
        return (long)command.ExecuteScalar()!;
    }

    /// <summary>Every table's rows in key order, as text: two databases are equal when these are.</summary>
    private static string Dump(string database)
    {
        using var connection = new SqliteConnection($"Data Source={database};Pooling=False");
        connection.Open();
        return ObserverTables.Dump(connection);
    }

    /// <summary>The rows of <paramref name="database"/> about blocks after <paramref name="block"/>, and its open orders, as text (what an observer that started from a snapshot there must hold).</summary>
    private static string DumpAfter(string database, long block)
    {
        using var connection = new SqliteConnection($"Data Source={database};Pooling=False");
        connection.Open();
        var text = new System.Text.StringBuilder();
        foreach (string query in new[]
        {
            $"SELECT * FROM blocks WHERE block_no > {block} ORDER BY block_no", $"SELECT * FROM transactions WHERE block_no > {block} ORDER BY lsn",
            $"SELECT o.* FROM outcomes o JOIN transactions t ON t.lsn = o.lsn WHERE t.block_no > {block} ORDER BY o.lsn",
            $"SELECT * FROM trades WHERE block_no > {block} ORDER BY trade_id",
            "SELECT client_id, client_order_id, account, instrument, side, price, open_quantity FROM orders WHERE open_quantity > 0 ORDER BY client_id, client_order_id",
            "SELECT last_block, last_block_hash FROM observer",
        })
        {
            using SqliteCommand command = connection.CreateCommand();
            command.CommandText = query;
            using SqliteDataReader row = command.ExecuteReader();
            while (row.Read())
            {
                for (int i = 0; i < row.FieldCount; i++)
                {
                    text.Append(row.IsDBNull(i) ? "null" : row.GetValue(i).ToString()).Append('|');
                }
                text.Append('\n');
            }
        }
        return text.ToString();
    }

    /// <summary>The state after block <paramref name="block"/> of <paramref name="journal"/> as a node's snapshot (replayed here, written and read back as a node does).</summary>
    private static LoadedSnapshot SnapshotAt(string journal, ulong block)
    {
        var applier = new BlockApplier(new Exchange());
        Hash32 hash = default;
        using (JournalReader reader = JournalReader.Open(journal))
        {
            reader.Scan((entry, _) =>
            {
                var records = BlockRecords.Open(entry);
                if (records.Header.BlockNo > block)
                {
                    return false;
                }
                if (records.Header.Kind == BlockKind.Transactions)
                {
                    var none = new NullSink();
                    applier.ApplyBlock(records, ref none);
                }
                hash = BlockFormat.StoredHash(entry, records.Header);
                return true;
            });
        }
        var bytes = new System.Buffers.ArrayBufferWriter<byte>();
        applier.Exchange.WriteSnapshot(bytes, block, in hash);
        Exchange exchange = Exchange.ReadSnapshot(bytes.WrittenSpan, out SnapshotHeader header);
        return new LoadedSnapshot(exchange, header, "test");
    }

    [Test]
    public void From_a_snapshot_it_holds_the_rows_after_it_and_the_same_book_and_resumes_only_with_one()
    {
        string journal = Generate("journal", 30_000, seed: 21);
        string whole = Path.Combine(_temp.Path, "whole.db");
        ObserveReport all = Load(journal, whole);
        ulong at = all.ToBlock / 3;
        LoadedSnapshot snapshot = SnapshotAt(journal, at);
        Assert.That(snapshot.Exchange.OpenOrders, Is.GreaterThan(10), "a book worth carrying over");

        // A load that starts from the snapshot, stopped half-way, then resumed: with a snapshot only.
        string fromSnapshot = Path.Combine(_temp.Path, "from-snapshot.db");
        using (var store = new SqliteObserverStore(fromSnapshot))
        {
            ObserveReport first = JournalObserver.Load(journal, store, _ => { }, untilBlock: at + (all.ToBlock - at) / 2, snapshot: snapshot);
            Assert.That(first.FromBlock, Is.EqualTo(at + 1));
        }
        Assert.That(() => Load(journal, fromSnapshot), Throws.TypeOf<ObserverFaultException>().With.Message.Contains("started from a snapshot"));
        using (var store = new SqliteObserverStore(fromSnapshot))
        {
            JournalObserver.Load(journal, store, _ => { }, snapshot: SnapshotAt(journal, at + 5));
        }
        Assert.That(DumpAfter(fromSnapshot, (long)at), Is.EqualTo(DumpAfter(whole, (long)at)), "the rows after the snapshot, and the same book at the end");
        Assert.That(Scalar(fromSnapshot, "SELECT min(block_no) FROM blocks"), Is.EqualTo((long)at + 1));

        // A snapshot later than the database's last block, or of another history: refused, nothing written.
        string other = Generate("other", 30_000, seed: 22);
        Assert.That(() =>
        {
            using var store = new SqliteObserverStore(Path.Combine(_temp.Path, "other.db"));
            JournalObserver.Load(journal, store, _ => { }, snapshot: SnapshotAt(other, at));
        }, Throws.TypeOf<ObserverFaultException>().With.Message.Contains("another history"));
        string early = Path.Combine(_temp.Path, "early.db");
        using (var store = new SqliteObserverStore(early))
        {
            JournalObserver.Load(journal, store, _ => { }, untilBlock: at);
        }
        Assert.That(() =>
        {
            using var store = new SqliteObserverStore(early);
            JournalObserver.Load(journal, store, _ => { }, snapshot: SnapshotAt(journal, at + 10));
        }, Throws.TypeOf<ObserverFaultException>().With.Message.Contains("would be missing"));
    }

    [Test]
    public void The_tables_agree_with_an_independent_replay_of_the_ledger()
    {
        string journal = Generate("journal", 40_000, seed: 9);
        string database = Path.Combine(_temp.Path, "ledger.db");
        ObserveReport report = Load(journal, database);
        (Tally tally, int openOrders, long blocks) = Replay(journal);

        Assert.That(report.ToBlock + 1, Is.EqualTo((ulong)blocks));
        Assert.That(report.RootsChecked, Is.GreaterThanOrEqualTo(3), "roots handed over as the run went, each recomputed");
        Assert.That(Scalar(database, "SELECT count(*) FROM blocks"), Is.EqualTo(blocks));
        Assert.That(Scalar(database, "SELECT count(*) FROM transactions"), Is.EqualTo(tally.AcceptedCount + tally.RejectedCount));
        Assert.That(Scalar(database, "SELECT count(*) FROM outcomes WHERE accepted = 1"), Is.EqualTo(tally.AcceptedCount));
        Assert.That(Scalar(database, "SELECT count(*) FROM outcomes WHERE accepted = 0"), Is.EqualTo(tally.RejectedCount));
        Assert.That(Scalar(database, "SELECT count(*) FROM trades"), Is.EqualTo(tally.Trades.Count));
        Assert.That(Scalar(database, "SELECT count(*) FROM trades WHERE buy_client = 0 OR sell_client = 0"), Is.Zero, "both sides of every trade");
        Assert.That(Scalar(database, "SELECT count(*) FROM orders WHERE open_quantity > 0"), Is.EqualTo(openOrders), "the open orders are the book's");
        Assert.That(Scalar(database, "SELECT max(lsn) FROM transactions"), Is.EqualTo(tally.AcceptedCount + tally.RejectedCount), "LSNs dense from 1");
    }

    [Test]
    public void A_load_resumed_after_more_blocks_equals_one_load_of_the_whole()
    {
        string journal = Generate("journal", 15_000, seed: 4);
        string resumed = Path.Combine(_temp.Path, "resumed.db");
        ObserveReport first = Load(journal, resumed);
        Generate("journal", 15_000, seed: 5); // the same journal, continued
        ObserveReport second = Load(journal, resumed);
        Assert.That(second.FromBlock, Is.EqualTo(first.ToBlock + 1), "it went on where the database stopped");

        string whole = Path.Combine(_temp.Path, "whole.db");
        Load(journal, whole);
        Assert.That(Dump(resumed), Is.EqualTo(Dump(whole)));
        ObserveReport again = Load(journal, resumed);
        Assert.That(again.BlocksWritten, Is.Zero, "nothing new: nothing written, nothing doubled");
        Assert.That(Dump(resumed), Is.EqualTo(Dump(whole)));
    }

    [Test]
    public void A_database_of_another_history_or_a_journal_that_does_not_verify_stops_it()
    {
        string a = Generate("a", 5_000, seed: 1);
        string b = Generate("b", 8_000, seed: 2);
        string database = Path.Combine(_temp.Path, "a.db");
        Load(a, database);
        Assert.That(() => Load(b, database), Throws.TypeOf<ObserverFaultException>().With.Message.Contains("another history"));

        // A record altered in b's journal (its block hash no longer matches): the load stops at that block.
        (long address, int length) = LastEntry(b);
        using (FileStream file = File.Open(Path.Combine(b, Journal.SegmentPrefix + ".0"), FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = address + 4 + length - 100; // inside the last block's body (FasterLog's 4-byte length first)
            int value = file.ReadByte();
            file.Position -= 1;
            file.WriteByte((byte)(value ^ 0x10));
        }
        Assert.That(() => Load(b, Path.Combine(_temp.Path, "b.db")), Throws.TypeOf<ObserverFaultException>().With.Message.Contains("does not verify"));
    }

    /// <summary>A records root that does not match its records stops the observer: it recomputes every root, as an auditor does.</summary>
    [Test]
    public void A_wrong_records_root_stops_it_and_right_ones_are_checked()
    {
        foreach (bool wrong in new[] { false, true })
        {
            string dir = _temp.Sub(wrong ? "wrong" : "right");
            using (Journal journal = Journal.Open(new JournalSettings { Directory = dir, Durability = Durability.Memory, MaxTransactionsPerBlock = 8 }))
            {
                var source = new OneRoot(wrong);
                var builder = new BlockBuilder(journal.Head, 8) { RootSource = source };
                for (ulong b = 1; b <= 6; b++)
                {
                    source.Leaves.Clear();
                    for (ulong i = 0; i < 3; i++)
                    {
                        ulong seq = (b * 10) + i;
                        var tx = Transaction.NewOrder(1, seq, 1, 1, seq, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 100, 10);
                        builder.Add(in tx);
                    }
                    ReadOnlySpan<byte> entry = builder.Seal(1_000, out _);
                    journal.Append(entry);
                    source.Saw(entry);
                }
            }
            string database = Path.Combine(_temp.Path, wrong ? "wrong.db" : "right.db");
            if (wrong)
            {
                Assert.That(() => Load(dir, database), Throws.TypeOf<ObserverFaultException>().With.Message.Contains("but the root of those records is"));
            }
            else
            {
                Assert.That(Load(dir, database).RootsChecked, Is.EqualTo(5), "blocks 2…6 each carry the root of the block before");
            }
        }
    }

    /// <summary>Hands every block the root of the block sealed before it (flipped, if asked).</summary>
    private sealed class OneRoot(bool wrong) : IRecordsRootSource
    {
        private RecordsRoot? _next;

        public List<Hash32> Leaves { get; } = [];

        public void Saw(ReadOnlySpan<byte> entry)
        {
            Assert.That(BlockFormat.TryReadHeader(entry, out BlockHeader header), Is.Null);
            var leaves = new List<Hash32>();
            foreach (BlockRecord record in BlockRecords.Of(entry, in header))
            {
                leaves.Add(Merkle.LeafHash(record.Bytes));
            }
            Hash32 root = Merkle.Root([.. leaves]);
            if (wrong && header.BlockNo == 4)
            {
                ((Span<byte>)root)[0] ^= 1;
            }
            _next = new RecordsRoot(header.BlockNo, 1, (uint)leaves.Count, root);
        }

        public bool TryTake(out RecordsRoot root)
        {
            root = _next ?? default;
            bool taken = _next is not null;
            _next = null;
            return taken;
        }
    }

    private static (long Address, int Length) LastEntry(string journal)
    {
        using JournalReader reader = JournalReader.Open(journal);
        (long, int) last = default;
        reader.Scan((entry, address) =>
        {
            last = (address, entry.Length);
            return true;
        });
        return last;
    }
}
