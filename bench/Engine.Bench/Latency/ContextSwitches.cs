using System.Globalization;
using System.Runtime.InteropServices;

namespace Engine.Bench.Latency;

/// <summary>
/// How often a process's threads were switched out (voluntary: they blocked or slept; involuntary:
/// preempted). The latency benchmark reads it around a cell to count the wake-ups an order costs on
/// each side. Another process: from Linux's <c>/proc/PID/task/*/status</c>, per thread, so a thread
/// that ends during the cell costs only its own count (not a negative total), one that starts counts
/// from zero. This process: <c>getrusage</c>, which keeps the ended threads' counts too.
/// </summary>
internal static class ContextSwitches
{
    /// <summary>Each thread's switches so far (thread id → count); empty where /proc is not there.</summary>
    public static Dictionary<int, long> PerThread(int pid)
    {
        var counts = new Dictionary<int, long>();
        string tasks = $"/proc/{pid}/task";
        if (!Directory.Exists(tasks))
        {
            return counts;
        }
        foreach (string task in Directory.EnumerateDirectories(tasks))
        {
            try
            {
                long total = 0;
                foreach (string line in File.ReadLines(Path.Combine(task, "status")))
                {
                    if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal) || line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal))
                    {
                        total += long.Parse(line.AsSpan(line.IndexOf(':') + 1).Trim(), CultureInfo.InvariantCulture);
                    }
                }
                counts[int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture)] = total;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The thread ended while we looked.
            }
        }
        return counts;
    }

    /// <summary>The switches between two <see cref="PerThread"/> readings: each thread still there at the end, from its first reading (or zero).</summary>
    public static long Between(Dictionary<int, long> before, Dictionary<int, long> after) =>
        after.Sum(t => t.Value - before.GetValueOrDefault(t.Key));

    /// <summary>This process's switches so far, every thread's, ended ones included (0 off Linux).</summary>
    public static long OfThisProcess()
    {
        if (!OperatingSystem.IsLinux())
        {
            return 0;
        }
        Span<long> usage = stackalloc long[18]; // struct rusage on 64-bit Linux: 2 timevals, then 14 longs
        return GetRusage(0, ref MemoryMarshal.GetReference(usage)) == 0 ? usage[16] + usage[17] : 0; // ru_nvcsw, ru_nivcsw
    }

    [DllImport("libc", EntryPoint = "getrusage")]
    private static extern int GetRusage(int who, ref long usage);
}
