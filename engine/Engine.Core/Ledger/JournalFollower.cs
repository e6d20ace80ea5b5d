using Engine.Core.Journaling;

namespace Engine.Core.Ledger;

/// <summary>
/// Background work over the journal's new blocks, on a thread of its own below the order path: it
/// wakes every <see cref="Interval"/> and calls <see cref="Poll"/>, under <c>SCHED_IDLE</c>
/// (<see cref="BackgroundPriority"/>), so on shared cores it runs only when nothing on the order path
/// wants the core, falls behind under a load it cannot follow, and catches up after. The
/// records-root builder and the head signer. With a zero interval there is no thread, and the owner
/// calls <see cref="Poll"/> (the simulator's and the tests' way).
/// </summary>
public abstract class JournalFollower : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly string _name;
    private readonly bool _yield;
    private Thread? _thread;

    /// <param name="journal">The journal it follows.</param>
    /// <param name="interval">How often it wakes (zero: never on its own).</param>
    /// <param name="log">Where it says where it started, and a fault.</param>
    /// <param name="name">What it makes, for its thread's name and its messages ("records roots", "signed heads").</param>
    /// <param name="yieldToOrderPath">Run under <c>SCHED_IDLE</c> (the default). False: at normal priority, for a
    /// test that waits for the thread on a machine other tests may keep busy (under <c>SCHED_IDLE</c> it would
    /// starve there for as long as they do: the price of never taking a core the order path wants).</param>
    protected JournalFollower(IJournal journal, TimeSpan interval, Action<string>? log, string name, bool yieldToOrderPath = true)
    {
        _yield = yieldToOrderPath;
        ArgumentNullException.ThrowIfNull(journal);
        ArgumentOutOfRangeException.ThrowIfLessThan(interval, TimeSpan.Zero);
        Journal = journal;
        Interval = interval;
        Log = log ?? (_ => { });
        _name = name;
    }

    public TimeSpan Interval { get; }

    /// <summary>The fault it stopped on, if it did (no more of its work; the order path is unaffected).</summary>
    public Exception? Fault { get; private set; }

    protected IJournal Journal { get; }

    protected Action<string> Log { get; }

    /// <summary>
    /// A cursor that follows the journal (<see cref="IJournal.OpenFollower"/>), kept from poll to poll:
    /// opening one is not free (FasterLog allocates its read frames). Disposed with this.
    /// </summary>
    protected IEntryCursor? Cursor { get; set; }

    /// <summary>Does what is due: reads what was committed since the last call, and acts on it; returns the blocks read. Never called by two threads at once.</summary>
    public abstract int Poll();

    /// <summary>Starts the thread (with a non-zero interval); a derived constructor calls it last, once its fields are set.</summary>
    protected void Start()
    {
        if (Interval > TimeSpan.Zero)
        {
            _thread = new Thread(Run) { IsBackground = true, Name = _name.Replace(' ', '-') };
            _thread.Start();
        }
    }

    private void Run()
    {
        if (_yield)
        {
            BackgroundPriority.LowerCurrentThread(); // behind the order path on shared cores: it catches up when they are free
        }
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                Poll();
                _stop.Token.WaitHandle.WaitOne(Interval);
            }
        }
        catch (Exception e) when (_stop.IsCancellationRequested && e is ObjectDisposedException or JournalFaultException)
        {
            // Stopping while the journal closes.
        }
        catch (Exception e)
        {
            Fault = e;
            Log($"{_name} stopped: {e.GetType().Name}: {e.Message} (no more {_name}; orders are unaffected)");
        }
    }

    /// <summary>Stops the thread (before the journal is closed).</summary>
    public void Dispose()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }
        _stop.Cancel();
        _thread?.Join();
        _stop.Dispose();
        Cursor?.Dispose();
        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Lets go of what the follower holds besides its cursor, once its thread has stopped.</summary>
    protected virtual void Release()
    {
    }
}
