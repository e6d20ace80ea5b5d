using System.Buffers;
using System.Threading.Channels;
using Engine.Core.Journaling;
using Engine.Core.Ledger;
using Engine.Protocol;

namespace Engine.Core.Server;

/// <summary>
/// Answers clients' proof requests (<see cref="MessageType.ProofRequest"/>) on a thread of its own,
/// apart from the order path: a session hands a request over (<see cref="TryTake"/>) and goes on
/// reading; the desk makes the proof (<see cref="LiveProver"/>) and queues its chunks on the session
/// in one piece.
/// </summary>
/// <remarks>
/// Bounded: at most <see cref="MaxWaiting"/> requests wait, <see cref="MaxWaitingPerSession"/> of any
/// one session; beyond that a request is refused at once (<see cref="RejectReason.ProofUnavailable"/>,
/// "busy"), so a client that floods requests costs the node one thread's bounded work and nobody
/// else's answers. A proof reads a bounded stretch of the journal (about 10-100 ms of blocks).
/// </remarks>
internal sealed class ProofDesk : IDisposable
{
    public const int MaxWaiting = 64;
    public const int MaxWaitingPerSession = 4;

    private readonly LiveProver _prover;
    private readonly Channel<Request> _requests = Channel.CreateBounded<Request>(new BoundedChannelOptions(MaxWaiting) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly Thread _thread;
    private readonly Action<string> _log;
    private readonly Action? _wantRoot;
    private long _answered;
    private long _refused;

    private readonly record struct Request(Session Session, ulong RequestId, ulong Lsn, ulong BlockNo);

    /// <param name="journal">The journal proofs are made from.</param>
    /// <param name="heads">The signed heads and the tree of block hashes.</param>
    /// <param name="log">Where a proof that failed its own check is told.</param>
    /// <param name="wantRoot">Told when a proof waits for its records root or head (an idle ledger seals a block for the root then), or null.</param>
    public ProofDesk(IJournal journal, HeadSigner heads, Action<string> log, Action? wantRoot = null)
    {
        _prover = new LiveProver(journal, heads);
        _log = log;
        _wantRoot = wantRoot;
        _thread = new Thread(Run) { IsBackground = true, Name = "proofs" };
        _thread.Start();
    }

    /// <summary>Proofs sent.</summary>
    public long Answered => Interlocked.Read(ref _answered);

    /// <summary>Requests refused (busy, unavailable, no such transaction of the client).</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Takes a request of <paramref name="session"/> (whose client it is checked to be); false when the desk or the session has too many waiting.</summary>
    public bool TryTake(Session session, ulong requestId, ulong lsn, ulong blockNo)
    {
        if (Interlocked.Increment(ref session.ProofsWaiting) > MaxWaitingPerSession)
        {
            Interlocked.Decrement(ref session.ProofsWaiting);
            Interlocked.Increment(ref _refused);
            return false;
        }
        if (!_requests.Writer.TryWrite(new Request(session, requestId, lsn, blockNo)))
        {
            Interlocked.Decrement(ref session.ProofsWaiting);
            Interlocked.Increment(ref _refused);
            return false;
        }
        return true;
    }

    private void Run()
    {
        ChannelReader<Request> reader = _requests.Reader;
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (reader.TryRead(out Request request))
            {
                try
                {
                    Answer(request);
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidDataException or ArgumentException or JournalFaultException)
                {
                    // The journal closing under a stopping node, or a read that failed: this request's
                    // refusal, never the desk's end.
                    Refuse(request, RejectReason.ProofUnavailable, $"the proof could not be made: {e.Message}");
                }
                finally
                {
                    Interlocked.Decrement(ref request.Session.ProofsWaiting);
                }
            }
        }
    }

    private void Answer(in Request request)
    {
        Session session = request.Session;
        if (session.IsClosed)
        {
            return;
        }
        if (_prover.Prove(session.ClientId, request.Lsn, request.BlockNo, out RejectReason refusal, out string why) is not { } proof)
        {
            if (refusal == RejectReason.ProofUnavailable && why.Contains("does not verify", StringComparison.Ordinal))
            {
                _log($"proof of lsn {request.Lsn} (block {request.BlockNo}) for client {session.ClientId}: {why}");
            }
            else if (refusal == RejectReason.ProofUnavailable)
            {
                _wantRoot?.Invoke(); // not provable yet: on an idle ledger its root waits for a block of its own
            }
            Refuse(request, refusal, why);
            return;
        }
        byte[] bytes = proof.ToBytes();
        int length = ProofCodec.EncodedProofBytes(bytes.Length);
        byte[] frames = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            int written = ProofCodec.EncodeProof(request.RequestId, bytes, frames);
            if (session.Enqueue(frames.AsSpan(0, written)))
            {
                Interlocked.Increment(ref _answered);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frames);
        }
    }

    private void Refuse(in Request request, RejectReason reason, string why)
    {
        Interlocked.Increment(ref _refused);
        Span<byte> frame = stackalloc byte[Frame.MaxBytes];
        request.Session.Enqueue(frame[..ProofCodec.EncodeRefusal(request.RequestId, reason, why, frame)]);
    }

    /// <summary>Stops taking requests and waits for the one being answered (before the journal closes).</summary>
    public void Dispose()
    {
        _requests.Writer.TryComplete();
        _thread.Join();
    }
}
