using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Engine.Core.Book;
using Engine.Core.Chain;
using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Core.Server;

/// <summary>
/// What a backup runs once at start-up so that its takeover does not wait for the JIT: a throwaway
/// node (temporary journal, loopback port 0, a mirror that acknowledges at once, its own reference
/// data with one instrument and one client) that takes a logon and a few thousand orders over TCP,
/// one at a time and in bursts, trading with each other. Without it the new primary compiled ~330
/// methods (~50 ms of JIT) on its first orders, and the clients' first receipts waited for that.
/// </summary>
internal static class TakeoverWarmUp
{
    private const uint ClientId = 1;
    private const uint Account = 1;
    private const uint InstrumentId = 1;
    private const long Price = 100;
    private const int SingleOrders = 300;
    private const int Bursts = 100;
    private const int BurstSize = 20;

    /// <summary>The throwaway node's reference data: one instrument, one account, one client with a random token.</summary>
    public static ReferenceData Reference(out string token)
    {
        token = Convert.ToHexString(Guid.NewGuid().ToByteArray());
        return new ReferenceData(
            new InstrumentTable([new Instrument(InstrumentId, "WARMUP", 1) { ReferencePrice = Price }]),
            new Dictionary<uint, AccountLimits> { [Account] = new AccountLimits(1_000_000, 1_000_000_000, 100_000) },
            [new ClientEntitlement(ClientId, token, [Account])],
            "take-over warm-up");
    }

    /// <summary>
    /// Logs on to <paramref name="endpoint"/> and trades: orders one at a time (the low-rate path, every
    /// hand-off a wake-up), then in bursts (the batching path). Returns the number of orders answered.
    /// </summary>
    public static async Task<int> TradeAsync(IPEndPoint endpoint, string token, CancellationToken cancel)
    {
        using var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(endpoint, cancel).ConfigureAwait(false);
        var send = new byte[BurstSize * Frame.MaxBytes];
        var receive = new byte[64 * 1024];
        int length = ReplyCodec.EncodeLogon(ClientId, token, send);
        await socket.SendAsync(send.AsMemory(0, length), cancel).ConfigureAwait(false);
        var reader = new ReplyReader(socket, receive);
        if (await reader.NextAsync(cancel).ConfigureAwait(false) is not MessageType.LogonAck)
        {
            throw new InvalidDataException("no logon answer");
        }
        ulong clientSeq = 0;
        int answered = 0;
        for (int i = 0; i < SingleOrders + Bursts; i++)
        {
            int count = i < SingleOrders ? 1 : BurstSize;
            length = 0;
            for (int k = 0; k < count; k++)
            {
                clientSeq++;
                // A cycle of four that takes every path an order takes: a buy rests, is replaced (quantity 2),
                // a sell crosses it (a trade, execution reports), the rest is cancelled.
                ulong phase = (clientSeq - 1) % 4;
                ulong buy = clientSeq - phase;
                Transaction order = phase switch
                {
                    0 => Transaction.NewOrder(ClientId, clientSeq, Account, InstrumentId, clientSeq, Side.Buy, OrderType.Limit, TimeInForce.Gtc, Price, 1),
                    1 => Transaction.Replace(ClientId, clientSeq, Account, InstrumentId, clientSeq, buy, Price, 2),
                    2 => Transaction.NewOrder(ClientId, clientSeq, Account, InstrumentId, clientSeq, Side.Sell, OrderType.Limit, TimeInForce.Ioc, Price, 1),
                    _ => Transaction.Cancel(ClientId, clientSeq, Account, InstrumentId, clientSeq, buy + 1),
                };
                length += TransactionCodec.Encode(in order, send.AsSpan(length));
            }
            await socket.SendAsync(send.AsMemory(0, length), cancel).ConfigureAwait(false);
            for (int replies = 0; replies < count;)
            {
                MessageType type = await reader.NextAsync(cancel).ConfigureAwait(false);
                if (type is MessageType.Accepted or MessageType.Rejected)
                {
                    replies++;
                    answered++;
                }
            }
        }
        return answered;
    }

    /// <summary>Says what the warm-up did, for the start-up log.</summary>
    public static string Describe(int orders, long started, long compiledBefore, TimeSpan jitBefore) =>
        string.Create(CultureInfo.InvariantCulture,
            $"warmed the take-over path: {orders} orders through a throwaway node in {Stopwatch.GetElapsedTime(started).TotalMilliseconds:F0} ms "
            + $"({System.Runtime.JitInfo.GetCompiledMethodCount() - compiledBefore} methods compiled, {(System.Runtime.JitInfo.GetCompilationTime() - jitBefore).TotalMilliseconds:F0} ms of JIT)");

    /// <summary>Reads whole frames off the socket, bounded by the frame size.</summary>
    private sealed class ReplyReader(Socket socket, byte[] buffer)
    {
        private int _start;
        private int _end;

        public async Task<MessageType> NextAsync(CancellationToken cancel)
        {
            while (true)
            {
                int available = _end - _start;
                int length = Frame.PeekLength(buffer.AsSpan(_start, available));
                if (available >= 4 && (length < Frame.HeaderBytes || length > Frame.MaxBytes))
                {
                    throw new InvalidDataException($"a frame of {length} bytes");
                }
                if (length > 0 && available >= length)
                {
                    if (Frame.Check(buffer.AsSpan(_start, length), out MessageType type, out _) != RejectReason.None)
                    {
                        throw new InvalidDataException("a corrupt frame");
                    }
                    _start += length;
                    return type;
                }
                if (_start > 0)
                {
                    buffer.AsSpan(_start, available).CopyTo(buffer);
                    _start = 0;
                    _end = available;
                }
                int read = await socket.ReceiveAsync(buffer.AsMemory(_end), cancel).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new IOException("the throwaway node closed the connection");
                }
                _end += read;
            }
        }
    }

    /// <summary>A backup that acknowledges every block at once, so that the node runs a pair primary's code.</summary>
    public sealed class InstantMirror : IBlockMirror
    {
        private long _sent = -1;
        private Action? _wake;

        public bool IsConnected => true;

        public bool MayAcknowledge => true;

        public void Send(ReadOnlySpan<byte> block, in ChainHead sealedHead)
        {
            Volatile.Write(ref _sent, (long)sealedHead.BlockNo);
            Volatile.Read(ref _wake)?.Invoke();
        }

        public void SendStateChecksum(ulong blockNo, Hash32 checksum)
        {
        }

        public bool IsAcknowledged(ulong blockNo, out string? never)
        {
            never = null;
            return (long)blockNo <= Volatile.Read(ref _sent);
        }

        public void OnAckProgress(Action wake) => Volatile.Write(ref _wake, wake);

        public void BeginStop()
        {
        }
    }
}
