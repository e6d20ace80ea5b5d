using System.Runtime.InteropServices;

namespace Engine.Core.Ledger;

/// <summary>
/// Lowers the calling thread's scheduling priority (Linux: the SCHED_IDLE policy) for work that may fall
/// behind and catch up later, so that on shared cores it yields to the order path instead of taking
/// its share: the records-root builder and the head signer. .NET's <see cref="Thread.Priority"/>
/// does not change the scheduler's priority on Linux; <c>sched_setscheduler</c> on the thread's id
/// does, and lowering a thread needs no privilege.
/// </summary>
internal static partial class BackgroundPriority
{
    /// <summary>The nice value background threads take (the lowest priority, 19).</summary>
    public const int Nice = 19;

    /// <summary>Lowers the calling thread; false where that is not possible (not Linux, or refused): it then runs at normal priority.</summary>
    public static bool LowerCurrentThread()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }
        try
        {
            // SCHED_IDLE: runs only when nothing else is runnable on the core, and a woken order-path
            // thread preempts it at once (a nice value alone still let it hold a core for a slice,
            // measured: the pipeline lost 18-30 % to a nice-19 root builder). The nice value too, for
            // a kernel that refuses the policy.
            int tid = GetTid();
            bool idle = SetScheduler(tid, SchedIdle, [0]) == 0;
            return SetPriority(0 /* PRIO_PROCESS: on Linux, a thread id names one thread */, tid, Nice) == 0 || idle;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "setpriority")]
    private static partial int SetPriority(int which, int who, int priority);

    private const int SchedIdle = 5;

    [LibraryImport("libc", EntryPoint = "sched_setscheduler")]
    private static partial int SetScheduler(int pid, int policy, int[] param);

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();
}
