using Engine.Replication;
using Engine.Replication.Pair;

namespace Engine.Sim;

/// <summary>
/// The replication network between the two nodes: connections carry whole frames in order (TCP), each
/// after a latency the seed picks; a partition makes frames and connects vanish (a black hole: only
/// the silence rule notices); a cut closes every connection at once; a corruption flips one byte of
/// the next frame (the receiver's CRC check refuses it and the link resets).
/// </summary>
public sealed class SimNetwork(SimClock clock, Random random, Action<string> trace)
{
    private readonly Dictionary<int, Connection> _connections = [];
    private int _next;

    /// <summary>Extra one-way latency while a delay fault lasts (ns).</summary>
    public long ExtraDelayNs { get; set; }

    /// <summary>While true, node-to-node traffic and connects vanish.</summary>
    public bool Partitioned { get; set; }

    /// <summary>The next frame sent has one byte flipped.</summary>
    public bool CorruptNext { get; set; }

    public long FramesDelivered { get; private set; }

    private long Latency() => (50_000 + random.Next(0, 250_000)) + ExtraDelayNs;

    /// <summary>Node <paramref name="from"/> connects to <paramref name="to"/>'s replication endpoint.</summary>
    public int Connect(SimNode from, SimNode to)
    {
        int id = ++_next;
        var connection = new Connection(id, from, to);
        _connections[id] = connection;
        long arrive = clock.Now + Latency();
        clock.At(arrive, () =>
        {
            if (!connection.Open)
            {
                return;
            }
            if (Partitioned || !to.Up || to.Pair?.IsListening != true)
            {
                // Refused (nobody listening) at once; a black hole only after the connect timeout.
                long after = Partitioned || !to.Up ? 500 * SimClock.NanosPerMs : 0;
                clock.After(after, () =>
                {
                    // The connect fails either way: its caller always hears of it (the host's connect timeout).
                    if (connection.Open)
                    {
                        connection.Open = false;
                        _connections.Remove(id);
                        from.OnClosed(id);
                    }
                });
                return;
            }
            connection.Accepted = true;
            to.OnAccepted(id);
            clock.After(Latency(), () =>
            {
                if (connection.Open)
                {
                    from.OnConnected(id);
                }
            });
        });
        return id;
    }

    public void Send(SimNode sender, int id, ReadOnlySpan<byte> frame)
    {
        if (!_connections.TryGetValue(id, out Connection? connection) || !connection.Open)
        {
            return;
        }
        if (Partitioned)
        {
            connection.BlackHoled = true; // see the delivery below
            return;
        }
        byte[] copy = frame.ToArray();
        if (CorruptNext && copy.Length > ReplicationFrame.HeaderBytes)
        {
            CorruptNext = false;
            int at = random.Next(ReplicationFrame.HeaderBytes, copy.Length);
            copy[at] ^= (byte)(1 << random.Next(8));
            trace($"net: flipped a byte of a frame from {sender.Name} on connection {id}");
        }
        SimNode receiver = sender == connection.From ? connection.To : connection.From;
        ref long last = ref sender == connection.From ? ref connection.LastToTo : ref connection.LastToFrom;
        long arrive = Math.Max(last, clock.Now + Latency());
        last = arrive;
        clock.At(arrive, () =>
        {
            // Sent before a close: still delivered (TCP delivers the data before the FIN); not after a crash or into a partition.
            if (Partitioned)
            {
                // TCP never delivers what follows a lost segment without it: a connection that lost a frame
                // delivers nothing more (its retransmissions fail), and only the silence rule notices.
                connection.BlackHoled = true;
            }
            if (connection.Reset || connection.BlackHoled || !receiver.Up)
            {
                return;
            }
            FramesDelivered++;
            if (ReplicationFrame.Invalid(copy, ReplicationFrame.MaxBytes) is { } invalid)
            {
                // What ReplicationLink throws: the receiver resets the link.
                receiver.OnCorruptFrame(id, invalid);
                return;
            }
            receiver.OnFrame(id, (ReplicationType)copy[4], copy.AsSpan(ReplicationFrame.HeaderBytes));
        });
    }

    /// <summary><paramref name="closer"/> closes the connection: the other end hears of it after a latency (FIN), unless partitioned.</summary>
    public void Close(SimNode closer, int id)
    {
        if (!_connections.TryGetValue(id, out Connection? connection) || !connection.Open)
        {
            return;
        }
        bool fromCloses = closer == connection.From;
        Drop(connection, notifyFrom: !fromCloses && connection.Accepted, notifyTo: fromCloses && connection.Accepted);
    }

    /// <summary>A node crashed: its kernel closes its sockets (the peer hears it unless partitioned).</summary>
    public void Crashed(SimNode node)
    {
        foreach (Connection connection in _connections.Values.Where(c => c.Open && (c.From == node || c.To == node)).ToArray())
        {
            connection.Reset = true; // what the dead process had queued is gone
            Drop(connection, notifyFrom: connection.From != node, notifyTo: connection.To != node && connection.Accepted);
        }
    }

    /// <summary>Cuts every connection: both ends hear of it.</summary>
    public void CutAll()
    {
        foreach (Connection connection in _connections.Values.Where(c => c.Open).ToArray())
        {
            connection.Reset = true;
            Drop(connection, notifyFrom: true, notifyTo: connection.Accepted);
        }
    }

    private void Drop(Connection connection, bool notifyFrom, bool notifyTo)
    {
        if (!connection.Open)
        {
            return;
        }
        connection.Open = false;
        _connections.Remove(connection.Id);
        if (Partitioned || connection.BlackHoled)
        {
            return; // nothing gets through: the silence rule tells them
        }
        // The FIN comes after whatever was sent before it, in each direction.
        long after = clock.Now + Latency();
        if (notifyFrom)
        {
            clock.At(Math.Max(after, connection.LastToFrom), () => connection.From.OnClosed(connection.Id));
        }
        if (notifyTo)
        {
            clock.At(Math.Max(after, connection.LastToTo), () => connection.To.OnClosed(connection.Id));
        }
    }

    private sealed class Connection(int id, SimNode from, SimNode to)
    {
        public int Id { get; } = id;

        public SimNode From { get; } = from;

        public SimNode To { get; } = to;

        public bool Open { get; set; } = true;

        public bool Accepted { get; set; }

        /// <summary>Closed by a crash: nothing in flight is delivered.</summary>
        public bool Reset { get; set; }

        /// <summary>A frame of it was lost in a partition: nothing more is delivered on it.</summary>
        public bool BlackHoled { get; set; }

        public long LastToTo;

        public long LastToFrom;
    }
}

/// <summary>One node's view of the network: what <see cref="PairNode"/> calls.</summary>
public sealed class SimTransport(SimNetwork network, SimNode self, Func<SimNode> peer) : IPairTransport
{
    public int Connect() => network.Connect(self, peer());

    public void Send(int connection, ReadOnlySpan<byte> frame) => network.Send(self, connection, frame);

    public string PeerName(int connection) => peer().Name;

    public void Send(int connection, ReplicationType type, ReadOnlySpan<byte> payload)
    {
        byte[] frame = new byte[ReplicationFrame.HeaderBytes + payload.Length];
        ReplicationFrame.Write(frame, type, payload);
        network.Send(self, connection, frame);
    }

    public void Close(int connection) => network.Close(self, connection);
}
