using Engine.Protocol;

namespace Engine.Sim;

/// <summary>
/// A trading front-end: sends its requests one at a time, in clientSeq order, to the node it believes
/// is primary; resends the same request to the other node when refused or unanswered for a while;
/// remembers every receipt it gets (the invariants check them). Its connection can drop (a fault):
/// whatever was on the way to it then is lost, and it reconnects and resends what is unanswered.
/// </summary>
public sealed class SimClient(SimWorld world, uint id, int requests)
{
    private const long ResendAfterNs = 300 * SimClock.NanosPerMs;
    private const long BackoffNs = 20 * SimClock.NanosPerMs;

    private ulong _seq;
    private int _target;
    private long _sentAt;
    private int _attempt;
    private int _connection;

    public uint Id { get; } = id;

    /// <summary>The receipt of each request answered, by clientSeq.</summary>
    public Dictionary<ulong, Receipt> Receipts { get; } = [];

    /// <summary>Answers that named another block or LSN than the first answer for the same request.</summary>
    public List<string> Contradictions { get; } = [];

    public int Requests { get; } = requests;

    /// <summary>Every request it sent has its answer.</summary>
    public bool Done => Receipts.Count == (int)_seq;

    public void Start() => SendNext();

    private void SendNext()
    {
        if (_seq >= (ulong)Requests || world.Clock.Now >= world.StopSendingAt)
        {
            return;
        }
        _seq++;
        _attempt = 0;
        Send();
    }

    private Transaction Current() => Transaction.NewOrder(Id, _seq, 1 + (Id % 10), 1, _seq, _seq % 2 == 0 ? Side.Buy : Side.Sell,
        OrderType.Limit, TimeInForce.Gtc, 1000 + (long)(_seq % 7), 1 + (long)(_seq % 5));

    private void Send()
    {
        SimNode node = world.Nodes[_target];
        _sentAt = world.Clock.Now;
        int attempt = ++_attempt;
        ulong seq = _seq;
        Transaction tx = Current();
        int connection = _connection;
        world.Clock.After(world.ClientLatency(), () =>
        {
            if (node.Up && connection == _connection)
            {
                node.OnRequest(this, connection, tx);
            }
        });
        world.Clock.After(ResendAfterNs, () =>
        {
            if (_seq == seq && _attempt == attempt && !Receipts.ContainsKey(seq))
            {
                _target = 1 - _target; // unanswered: try the other node
                Send();
            }
        });
    }

    /// <summary>
    /// The connection drops: what is on the way to or from the client over it is lost (answers to it
    /// are dropped); it reconnects <paramref name="reconnectInNs"/> later and resends what is unanswered.
    /// </summary>
    public void Disconnect(long reconnectInNs)
    {
        int connection = ++_connection;
        int attempt = ++_attempt; // the pending resend timer belonged to the old connection
        ulong seq = _seq;
        world.Clock.After(reconnectInNs, () =>
        {
            if (connection == _connection && _attempt == attempt && seq == _seq && seq != 0 && !Receipts.ContainsKey(seq))
            {
                _attempt--;
                Send();
            }
        });
    }

    public void OnRefused(SimNode from, int connection, ulong seq)
    {
        if (connection != _connection || seq != _seq || Receipts.ContainsKey(seq))
        {
            return;
        }
        _target = 1 - world.Nodes.IndexOf(from);
        int attempt = ++_attempt;
        world.Clock.After(BackoffNs, () =>
        {
            if (_seq == seq && _attempt == attempt)
            {
                _attempt--;
                Send();
            }
        });
    }

    public void OnAccepted(SimNode from, int connection, ulong seq, Receipt receipt)
    {
        if (connection != _connection)
        {
            return; // sent on a connection that has dropped since: lost
        }
        if (Receipts.TryGetValue(seq, out Receipt first))
        {
            if (first.BlockNo != receipt.BlockNo || first.Lsn != receipt.Lsn)
            {
                Contradictions.Add($"client {Id} seq {seq}: first block {first.BlockNo} lsn {first.Lsn}, then block {receipt.BlockNo} lsn {receipt.Lsn} from {from.Name}");
            }
            return;
        }
        Receipts[seq] = receipt;
        _target = world.Nodes.IndexOf(from);
        if (seq == _seq)
        {
            world.Clock.After(world.ThinkTime(), SendNext); // a front-end's orders spread over the run
        }
    }

    /// <summary>Where the client is in its requests (for a failing seed's report).</summary>
    public override string ToString() => $"client {Id}: seq {_seq}/{Requests}, {Receipts.Count} answered, last sent {(world.Clock.Now - _sentAt) / SimClock.NanosPerMs} ms ago";
}
