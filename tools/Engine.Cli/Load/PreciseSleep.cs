using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Engine.Cli.Load;

/// <summary>
/// Sleeps for tens of microseconds without spinning: <c>clock_nanosleep</c> with the thread's timer
/// slack cut from the default 50 µs to 1 µs. An open-loop sender paced this way leaves the cores to
/// the engine it measures (a yield or spin loop would take one of the two).
/// </summary>
internal static partial class PreciseSleep
{
    private const int PrSetTimerSlack = 29;
    private const int ClockMonotonic = 1;

    /// <summary>Asks the kernel for 1 µs timer slack on the calling thread (Linux); harmless elsewhere.</summary>
    public static void TightenTimerSlack()
    {
        if (OperatingSystem.IsLinux())
        {
            _ = Prctl(PrSetTimerSlack, 1, 0, 0, 0);
        }
    }

    /// <summary>Sleeps until <paramref name="dueTicks"/> (Stopwatch ticks), waking within a few microseconds after it.</summary>
    public static void Until(long dueTicks)
    {
        long remaining = dueTicks - Stopwatch.GetTimestamp();
        if (remaining <= 0)
        {
            return;
        }
        long nanos = remaining * 1_000_000_000 / Stopwatch.Frequency;
        if (OperatingSystem.IsLinux())
        {
            var request = new Timespec { Seconds = nanos / 1_000_000_000, Nanoseconds = nanos % 1_000_000_000 };
            _ = ClockNanosleep(ClockMonotonic, 0, ref request, IntPtr.Zero);
        }
        else
        {
            Thread.Sleep(TimeSpan.FromTicks(Math.Max(1, nanos / 100)));
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "prctl")]
    private static partial int Prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);

    [LibraryImport("libc", EntryPoint = "clock_nanosleep")]
    private static partial int ClockNanosleep(int clock, int flags, ref Timespec request, IntPtr remaining);
}
