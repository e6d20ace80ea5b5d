using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using Engine.Protocol;

namespace Engine.Core.Book;

/// <summary>Where a snapshot stands: the last block applied, that block's hash, and the state checksum there.</summary>
/// <param name="BlockNo">The last block whose transactions the state includes.</param>
/// <param name="BlockHash">That block's hash: the chain continues from it.</param>
/// <param name="StateChecksum"><see cref="Exchange.ComputeChecksum"/> of the state, checked again after loading.</param>
/// <param name="LastLsn">The last LSN applied.</param>
public readonly record struct SnapshotHeader(ulong BlockNo, Hash32 BlockHash, Hash32 StateChecksum, ulong LastLsn);

/// <summary>
/// The whole state machine as bytes: <see cref="WriteSnapshot"/> and <see cref="ReadSnapshot"/>.
/// </summary>
/// <remarks>
/// <para><b>Layout</b> (little-endian; version 3: version 2 had no reference data, version 1 no last
/// trade price per book; both are refused, and recovery then uses an older snapshot or genesis):</para>
/// <code>
///  0  u8[8] magic "ENGSNAP1"      8 u32 version = 3      12 u32 reserved = 0
/// 16  u64 block number            24 u8[32] block hash   56 u8[32] state checksum
/// 88  u64 last LSN                96 u64 next trade id
/// 104 u32 resting orders (all books: the loader sizes its tables from it)
/// 108 the reference data:
///     u32 instruments; per instrument (id ascending): u32 id, u64 symbol (AdminTransaction.PackSymbol),
///       i64 tick, i64 reference price, u32 price band (bps), u8 halted
///     u32 accounts; per account (id ascending): u32 id, i64 max order quantity, i64 max notional, u32 max open orders
///     u32 clients; per client (id ascending): u32 id, u8 enabled, u32 ranges; per range (ascending, apart): u32 first, u32 last account
///     u32 books; per book (instrument ascending): u32 instrument, i64 last trade price (0: none), then bids and asks, each:
///       u32 levels; per level (worst first, so that loading appends each level after the others
///       instead of moving them all): i64 price, u32 orders; per order (oldest first):
///       u64 clientOrderId, u64 clientSeq, i64 leaves, i64 cum, u32 clientId, u32 account
///     u32 clients; per client (first seen first): u32 id, u64 last seq, u64 first seq, u32 window
///       length; per window slot: u64 clientSeq, u64 lsn, u64 block, u16 reason, u8[32] block hash
///  end-32 u8[32] SHA-256 of everything before it
/// </code>
/// <para>Account open-order counts are not stored: they are counted from the orders. The reference
/// data is the ledger's, so the snapshot carries it (never a credential: the ledger has none), and
/// loading builds it through the same admin transactions the log applies, with their checks; an order
/// on an instrument or account the snapshot does not define is refused.</para>
/// <para><b>Hostile bytes.</b> A snapshot is read as untrusted: every count is bounded by the bytes
/// left, every field by the protocol's limits, every order by its book's shape (levels strictly
/// ordered from best, the book not crossed, one live order per key), and the loaded state must give
/// the checksum in the header. Anything else is an <see cref="InvalidDataException"/> naming what.</para>
/// </remarks>
public sealed partial class Exchange
{
    private const int SnapshotVersion = 3;
    private const int SnapshotHeaderBytes = 108;
    private const int SnapshotOrderBytes = 40;
    private const int SnapshotOutcomeBytes = 58;
    private static ReadOnlySpan<byte> SnapshotMagic => "ENGSNAP1"u8;

    /// <summary>
    /// Writes the whole state, as it is after block <paramref name="blockNo"/> (hash
    /// <paramref name="blockHash"/>), to <paramref name="destination"/>; returns its header. Runs on
    /// the thread that owns the state.
    /// </summary>
    public SnapshotHeader WriteSnapshot(ArrayBufferWriter<byte> destination, ulong blockNo, in Hash32 blockHash)
    {
        ArgumentNullException.ThrowIfNull(destination);
        Hash32 checksum = ComputeChecksum();
        var writer = new SnapshotWriter(destination);
        writer.Bytes(SnapshotMagic);
        writer.U32(SnapshotVersion);
        writer.U32(0);
        writer.U64(blockNo);
        writer.Bytes(blockHash);
        writer.Bytes(checksum);
        writer.U64(LastLsn);
        writer.U64(_nextTradeId);
        writer.U32((uint)_orders.Live);
        WriteReference(writer);
        writer.U32((uint)_books.Count(b => b is not null));
        foreach (OrderBook? book in _books)
        {
            if (book is null)
            {
                continue;
            }
            writer.U32(book.Instrument);
            writer.U64((ulong)book.LastTradePrice);
            foreach (BookSide side in (ReadOnlySpan<BookSide>)[book.Bids, book.Asks])
            {
                writer.U32((uint)side.LevelCount);
                for (int i = side.LevelCount - 1; i >= 0; i--)
                {
                    ref Level level = ref side[side.LevelFromBest(i)];
                    writer.U64((ulong)level.Price);
                    writer.U32((uint)level.Count);
                    for (int o = level.Head; o >= 0; o = _orders[o].Next)
                    {
                        ref Order order = ref _orders[o];
                        writer.U64(order.ClientOrderId);
                        writer.U64(order.ClientSeq);
                        writer.U64((ulong)order.Leaves);
                        writer.U64((ulong)order.Cum);
                        writer.U32(order.ClientId);
                        writer.U32(order.Account);
                    }
                }
            }
        }
        writer.U32((uint)_clientsInOrder.Count);
        foreach (ClientState client in _clientsInOrder)
        {
            writer.U32(client.Id);
            writer.U64(client.LastSeq);
            writer.U64(client.FirstSeq);
            writer.U32((uint)client.Window.Length);
            foreach (ref readonly Outcome outcome in client.Window.AsSpan())
            {
                writer.U64(outcome.ClientSeq);
                writer.U64(outcome.Lsn);
                writer.U64(outcome.BlockNo);
                writer.U16((ushort)outcome.Reason);
                writer.Bytes(outcome.BlockHash);
            }
        }
        writer.Finish();
        return new SnapshotHeader(blockNo, blockHash, checksum, LastLsn);
    }

    /// <summary>
    /// Checks what can be checked of a snapshot without loading it (its length, magic, SHA-256 and
    /// version) and returns its header: what a primary checks before it sends one to a backup.
    /// </summary>
    /// <exception cref="InvalidDataException">The bytes are no snapshot of this version, or are damaged.</exception>
    public static SnapshotHeader ReadSnapshotHeader(ReadOnlySpan<byte> snapshot)
    {
        if (snapshot.Length < SnapshotHeaderBytes + 8 + SHA256.HashSizeInBytes)
        {
            throw new InvalidDataException($"a snapshot of {snapshot.Length} bytes is shorter than its header");
        }
        if (!snapshot[..8].SequenceEqual(SnapshotMagic))
        {
            throw new InvalidDataException("not a snapshot (its first bytes are not ENGSNAP1)");
        }
        ReadOnlySpan<byte> body = snapshot[..^SHA256.HashSizeInBytes];
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(body, digest);
        if (!digest.SequenceEqual(snapshot[^SHA256.HashSizeInBytes..]))
        {
            throw new InvalidDataException("the snapshot's SHA-256 does not match its bytes: damaged");
        }
        var reader = new SnapshotReader(body[8..]);
        uint version = reader.U32("version");
        if (version != SnapshotVersion || reader.U32("reserved") != 0)
        {
            throw new InvalidDataException($"snapshot format version {version}; this engine reads version {SnapshotVersion}");
        }
        return new SnapshotHeader(reader.U64("block number"), reader.Hash("block hash"), reader.Hash("state checksum"), reader.U64("last LSN"));
    }

    /// <summary>
    /// Loads a state written by <see cref="WriteSnapshot"/>, checking all of it (see the type's
    /// remarks); the header says where it stands.
    /// </summary>
    /// <exception cref="InvalidDataException">The bytes are no snapshot of this version, are damaged, or describe a state that cannot be (the message names what).</exception>
    public static Exchange ReadSnapshot(ReadOnlySpan<byte> snapshot, out SnapshotHeader header)
    {
        SnapshotHeader stated = ReadSnapshotHeader(snapshot);
        var reader = new SnapshotReader(snapshot[96..^SHA256.HashSizeInBytes]); // after the fields of the header, from the next trade id on
        ulong blockNo = stated.BlockNo;
        Hash32 blockHash = stated.BlockHash;
        Hash32 checksum = stated.StateChecksum;
        ulong lastLsn = stated.LastLsn;
        var exchange = new Exchange { LastLsn = lastLsn, _nextTradeId = reader.U64("next trade id") };
        if (exchange._nextTradeId == 0)
        {
            throw new InvalidDataException("next trade id 0: trade ids start at 1");
        }
        uint resting = reader.Count("resting orders", SnapshotOrderBytes, int.MaxValue);
        exchange._orders.EnsureCapacity((int)resting);
        exchange._byKey.EnsureCapacity((int)resting);
        exchange.HoldPublishing();
        exchange.LoadReference(ref reader);
        exchange.ReleasePublishing();
        exchange.LoadBooks(ref reader);
        if (exchange._orders.Live != resting)
        {
            throw new InvalidDataException($"the books hold {exchange._orders.Live} orders; the header says {resting}");
        }
        exchange.LoadClients(ref reader);
        if (!reader.AtEnd)
        {
            throw new InvalidDataException($"{reader.Left} bytes after the last client");
        }
        Hash32 loaded = exchange.ComputeChecksum();
        if (loaded != checksum)
        {
            throw new InvalidDataException($"the loaded state's checksum {loaded.ToShortString()} is not the snapshot's {checksum.ToShortString()}");
        }
        header = new SnapshotHeader(blockNo, blockHash, checksum, lastLsn);
        return exchange;
    }

    private void WriteReference(SnapshotWriter writer)
    {
        ReferenceView reference = Reference;
        writer.U32((uint)reference.Instruments.All.Count);
        foreach (Ledger.Instrument instrument in reference.Instruments.All.OrderBy(i => i.Id))
        {
            writer.U32(instrument.Id);
            writer.U64(AdminTransaction.PackSymbol(instrument.Symbol));
            writer.U64((ulong)instrument.TickSize);
            writer.U64((ulong)instrument.ReferencePrice);
            writer.U32((uint)instrument.PriceBandBps);
            writer.U8(instrument.Halted ? (byte)1 : (byte)0);
        }
        writer.U32((uint)reference.Accounts.Count);
        foreach (var (id, limits) in reference.Accounts)
        {
            writer.U32(id);
            writer.U64((ulong)limits.MaxOrderQuantity);
            writer.U64((ulong)limits.MaxOrderNotional);
            writer.U32((uint)limits.MaxOpenOrders);
        }
        writer.U32((uint)reference.Clients.Count);
        foreach (var (id, grants) in reference.Clients)
        {
            writer.U32(id);
            writer.U8(grants.Enabled ? (byte)1 : (byte)0);
            writer.U32((uint)grants.Accounts.Length);
            foreach (AccountRange range in grants.Accounts)
            {
                writer.U32(range.First);
                writer.U32(range.Last);
            }
        }
    }

    /// <summary>
    /// Loads the reference data through the admin transactions that make it, so that a snapshot's
    /// tables pass the same checks as the log's; ids must ascend and a client's ranges be as the
    /// ledger keeps them (ascending, apart), so one state has one snapshot.
    /// </summary>
    private void LoadReference(ref SnapshotReader reader)
    {
        uint instruments = reader.Count("instruments", 33, ProtocolLimits.MaxInstrumentId);
        uint previous = 0;
        for (uint i = 0; i < instruments; i++)
        {
            uint id = reader.U32("instrument id");
            Transaction define = new()
            {
                Kind = MessageType.InstrumentDefine,
                Instrument = id,
                ClientOrderId = reader.U64("symbol"),
                Quantity = (long)reader.U64("tick"),
                Price = (long)reader.U64("reference price"),
                Account = reader.U32("price band"),
            };
            byte halted = reader.U8("halted");
            if (id <= previous || halted > 1)
            {
                throw new InvalidDataException($"instrument {i}: id {id} after {previous}, halted {halted}");
            }
            previous = id;
            Admin(in define);
            if (halted == 1)
            {
                Admin(AdminTransaction.HaltInstrument(id));
            }
        }
        uint accounts = reader.Count("accounts", 24, int.MaxValue);
        previous = 0;
        for (uint a = 0; a < accounts; a++)
        {
            uint id = reader.U32("account id");
            long quantity = (long)reader.U64("max order quantity");
            long notional = (long)reader.U64("max notional");
            uint open = reader.U32("max open orders");
            if ((a > 0 && id <= previous) || open > int.MaxValue)
            {
                throw new InvalidDataException($"account {a}: id {id} after {previous}, {open} open orders");
            }
            previous = id;
            Admin(AdminTransaction.SetAccountLimits(id, quantity, notional, (int)open));
        }
        uint clients = reader.Count("clients", 9, ProtocolLimits.MaxClientId);
        previous = 0;
        for (uint c = 0; c < clients; c++)
        {
            uint id = reader.U32("client id");
            byte enabled = reader.U8("enabled");
            uint count = reader.Count("account ranges", 8, ClientGrants.MaxRanges);
            if (id <= previous || enabled > 1)
            {
                throw new InvalidDataException($"client {c}: id {id} after {previous}, enabled {enabled}");
            }
            previous = id;
            Admin(AdminTransaction.EnableClient(id));
            var ranges = new AccountRange[count];
            for (int r = 0; r < ranges.Length; r++)
            {
                ranges[r] = new AccountRange(reader.U32("first account"), reader.U32("last account"));
                Admin(AdminTransaction.GrantAccounts(id, ranges[r].First, ranges[r].Last));
            }
            if (!_grants[id].Accounts.SequenceEqual(ranges))
            {
                throw new InvalidDataException($"client {id}: account ranges {string.Join(",", ranges)} are not ascending and apart");
            }
            if (enabled == 0)
            {
                Admin(AdminTransaction.DisableClient(id));
            }
        }

        void Admin(in Transaction tx)
        {
            var none = new NoReports();
            RejectReason refused = ApplyAdmin(in tx, 0, ref none);
            if (refused != RejectReason.None)
            {
                throw new InvalidDataException($"{AdminTransaction.Describe(in tx)}: {refused}");
            }
        }
    }

    private void LoadBooks(ref SnapshotReader reader)
    {
        uint books = reader.Count("books", 4 + 8 + 8, (uint)_books.Length);
        uint previous = 0;
        for (uint b = 0; b < books; b++)
        {
            uint instrument = reader.U32("instrument");
            if (instrument <= previous || instrument >= (uint)_books.Length || _books[instrument] is not { } book)
            {
                throw new InvalidDataException($"book {b}: instrument {instrument} is not in the snapshot's reference data, or out of order");
            }
            previous = instrument;
            long lastTrade = (long)reader.U64("last trade price");
            if (lastTrade is < 0 or > ProtocolLimits.MaxPrice)
            {
                throw new InvalidDataException($"instrument {instrument}: last trade price {lastTrade} is out of range");
            }
            book.LastTradePrice = lastTrade;
            foreach (Side side in (ReadOnlySpan<Side>)[Side.Buy, Side.Sell])
            {
                LoadSide(ref reader, book, side);
            }
            if (book.Bids.Best >= 0 && book.Asks.Best >= 0 && book.Bids[book.Bids.Best].Price >= book.Asks[book.Asks.Best].Price)
            {
                throw new InvalidDataException($"instrument {instrument}: the book is crossed");
            }
        }
    }

    private void LoadSide(ref SnapshotReader reader, OrderBook book, Side side)
    {
        BookSide levels = side == Side.Buy ? book.Bids : book.Asks;
        uint count = reader.Count("levels", 12 + SnapshotOrderBytes, int.MaxValue);
        long previousPrice = 0;
        for (uint l = 0; l < count; l++)
        {
            long price = (long)reader.U64("price");
            if (price is <= 0 or > ProtocolLimits.MaxPrice || (l > 0 && (side == Side.Buy ? price <= previousPrice : price >= previousPrice)))
            {
                throw new InvalidDataException($"instrument {book.Instrument} {side}: level {l} at price {price} is out of range or not better than the one before ({previousPrice})");
            }
            previousPrice = price;
            uint orders = reader.Count("orders", SnapshotOrderBytes, int.MaxValue);
            if (orders == 0)
            {
                throw new InvalidDataException($"instrument {book.Instrument} {side}: an empty level at {price}");
            }
            for (uint o = 0; o < orders; o++)
            {
                ulong clientOrderId = reader.U64("clientOrderId");
                ulong clientSeq = reader.U64("clientSeq");
                long leaves = (long)reader.U64("leaves");
                long cum = (long)reader.U64("cum");
                uint clientId = reader.U32("clientId");
                uint account = reader.U32("account");
                if (leaves <= 0 || cum < 0 || leaves > ProtocolLimits.MaxQuantity || cum > ProtocolLimits.MaxQuantity - leaves
                    || clientId is 0 or > ProtocolLimits.MaxClientId || clientSeq == 0 || !_accounts.TryGetValue(account, out AccountState? state))
                {
                    throw new InvalidDataException($"instrument {book.Instrument} {side} at {price}: order {clientId}/{clientOrderId} has leaves {leaves}, cum {cum}, clientSeq {clientSeq}, account {account}");
                }
                var key = new OrderKey(clientId, clientOrderId);
                if (_byKey.ContainsKey(key))
                {
                    throw new InvalidDataException($"order {clientId}/{clientOrderId} rests twice");
                }
                int index = _orders.Allocate();
                ref Order order = ref _orders[index];
                order.ClientOrderId = clientOrderId;
                order.ClientSeq = clientSeq;
                order.ClientId = clientId;
                order.Account = account;
                order.Instrument = book.Instrument;
                order.Side = side;
                order.Price = price;
                order.Leaves = leaves;
                order.Cum = cum;
                levels.Append(index, _orders);
                _byKey.Add(key, index);
                state.Open++;
            }
        }
    }

    private void LoadClients(ref SnapshotReader reader)
    {
        uint clients = reader.Count("clients", 24, ProtocolLimits.MaxClientId);
        for (uint c = 0; c < clients; c++)
        {
            uint id = reader.U32("client id");
            ulong lastSeq = reader.U64("last seq");
            ulong firstSeq = reader.U64("first seq");
            uint length = reader.U32("window length");
            if (id is 0 or > ProtocolLimits.MaxClientId || _clients.ContainsKey(id))
            {
                throw new InvalidDataException($"client {c}: id {id} is out of range or comes twice");
            }
            if (!ClientState.IsWindowLength(length) || (ulong)reader.Left < (ulong)length * SnapshotOutcomeBytes)
            {
                throw new InvalidDataException($"client {id}: a window of {length} outcomes");
            }
            var window = new Outcome[length];
            for (int i = 0; i < window.Length; i++)
            {
                ref Outcome outcome = ref window[i];
                outcome.ClientSeq = reader.U64("outcome seq");
                outcome.Lsn = reader.U64("outcome LSN");
                outcome.BlockNo = reader.U64("outcome block");
                outcome.Reason = (RejectReason)reader.U16("outcome reason");
                if (!Enum.IsDefined(outcome.Reason))
                {
                    throw new InvalidDataException($"client {id}: an outcome with reason {(ushort)outcome.Reason}, which no version knows");
                }
                outcome.BlockHash = reader.Hash("outcome block hash");
            }
            var client = new ClientState(id);
            if (client.Restore(lastSeq, firstSeq, window) is { } wrong)
            {
                throw new InvalidDataException($"client {id}: {wrong}");
            }
            _clients.Add(id, client);
            _clientsInOrder.Add(client);
        }
    }

    /// <summary>Appends fields to the destination; <see cref="Finish"/> appends the SHA-256 of all it wrote.</summary>
    private readonly struct SnapshotWriter(ArrayBufferWriter<byte> destination)
    {
        private readonly int _start = destination.WrittenCount;

        public void U8(byte value) => Take(1)[0] = value;

        public void U16(ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Take(2), value);

        public void U32(uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Take(4), value);

        public void U64(ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Take(8), value);

        public void Bytes(ReadOnlySpan<byte> bytes) => bytes.CopyTo(Take(bytes.Length));

        public void Finish()
        {
            Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(destination.WrittenSpan[_start..], digest);
            Bytes(digest);
        }

        private Span<byte> Take(int bytes)
        {
            Span<byte> span = destination.GetSpan(bytes)[..bytes];
            destination.Advance(bytes);
            return span;
        }
    }

    /// <summary>Reads fields from an untrusted snapshot, failing with the field's name where the bytes end.</summary>
    private ref struct SnapshotReader(ReadOnlySpan<byte> bytes)
    {
        private ReadOnlySpan<byte> _left = bytes;

        public readonly int Left => _left.Length;

        public readonly bool AtEnd => _left.IsEmpty;

        public byte U8(string what) => Take(1, what)[0];

        public ushort U16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, what));

        public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));

        public ulong U64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));

        public Hash32 Hash(string what) => Hash32.From(Take(Hash32.Bytes, what));

        /// <summary>A count of items of at least <paramref name="itemBytes"/> each: at most <paramref name="max"/>, and no more than the bytes left can hold.</summary>
        public uint Count(string what, int itemBytes, uint max)
        {
            uint count = U32(what);
            if (count > max || (ulong)count * (ulong)itemBytes > (ulong)_left.Length)
            {
                throw new InvalidDataException($"{count} {what}: more than {max}, or more than the {_left.Length} bytes left can hold");
            }
            return count;
        }

        private ReadOnlySpan<byte> Take(int bytes, string what)
        {
            if (_left.Length < bytes)
            {
                throw new InvalidDataException($"the snapshot ends inside its {what}");
            }
            ReadOnlySpan<byte> taken = _left[..bytes];
            _left = _left[bytes..];
            return taken;
        }
    }
}
