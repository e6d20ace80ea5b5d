namespace Engine.Core.Server;

/// <summary>
/// Raises the thread pool's floor of worker threads in a pair node's process (see <see cref="Apply"/>).
/// </summary>
public static class ThreadPoolFloor
{
    /// <summary>Worker threads the pool makes at once, without its starvation delay.</summary>
    public const int MinWorkerThreads = 16;

    /// <summary>
    /// Lets the pool start up to <see cref="MinWorkerThreads"/> workers at once. On two cores its
    /// default floor is two, and beyond the floor it adds a thread only every half second or so. A
    /// pair node blocks pool threads for short moments on purpose (the pair's lock), and FASTER
    /// completes its commits on the pool. Measured in the kill-primary drill: as a new primary began
    /// its restarted backup's catch-up (which flushes the journal under the pair's lock), all six pool
    /// threads were blocked and its queue did not move for 0.6-0.9 s; the pair's ticks stopped, the
    /// witness's solo lease was not renewed and lapsed, and clients heard "no backup" meanwhile. With
    /// this floor, none of 6 rounds stalled (before: about half). Never lowers a floor set otherwise.
    /// <para>Applied by a pair's host (<c>PairHost.RunAsync</c>), whatever process runs it, and not by a
    /// node alone: it has no pair lock to block on, and the floor
    /// let the pool grow past what two cores run well under a closed-loop load (single node, `engine
    /// load --max`: 0.90-1.00× the peak without it, three runs, A B).</para>
    /// </summary>
    public static void Apply()
    {
        ThreadPool.GetMinThreads(out int workers, out int completionPorts);
        if (workers < MinWorkerThreads)
        {
            ThreadPool.SetMinThreads(MinWorkerThreads, completionPorts);
        }
    }
}
