using System.Diagnostics;
using Engine.Core.Chain;
using Engine.Core.Journaling;
using Engine.Protocol;
using Engine.Tests.Support;

namespace Engine.Tests.Journaling;

/// <summary>
/// A journal that fails: the test-only fault point (<see cref="JournalFaultPoint"/>) and a real full
/// disk (a small tmpfs, where this process may mount one). Either way the fault is sticky, is told at
/// once, and nothing passes <see cref="Journal.WaitDurable"/> after it, in either durability.
/// </summary>
public class JournalFaultTests
{
    private TempDirectory _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempDirectory("journal-fault");

    [TearDown]
    public void TearDown()
    {
        Environment.SetEnvironmentVariable(JournalFaultPoint.AppendAfterBlocksVariable, null);
        _temp.Dispose();
    }

    private static JournalSettings Settings(string directory, Durability durability) =>
        new() { Directory = directory, Durability = durability, MaxTransactionsPerBlock = 100, PageSizeBits = 16, MemorySizeBits = 18, SegmentSizeBits = 20, MaxCommitLagBytes = 64 << 10 };

    [Test]
    public void The_fault_point_fails_the_append_after_N_blocks_and_the_fault_is_sticky([Values] Durability durability)
    {
        string directory = _temp.Sub("j");
        Environment.SetEnvironmentVariable(JournalFaultPoint.AppendAfterBlocksVariable, "3");
        var addresses = new List<long>();
        ChainHead third;
        using (Journal journal = Journal.Open(Settings(directory, durability)))
        {
            Environment.SetEnvironmentVariable(JournalFaultPoint.AppendAfterBlocksVariable, null); // read at open: unsetting it now changes nothing
            var builder = new BlockBuilder(journal.Head, 100);
            for (int i = 0; i < 3; i++)
            {
                addresses.Add(journal.Append(Block(builder, 10)));
                journal.WaitDurable(addresses[^1]);
            }
            journal.Flush(); // committed, in either durability: what a failing device keeps
            third = builder.Head;
            Assert.That(journal.Fault, Is.Null);

            Assert.That(() => journal.Append(Block(builder, 10)), Throws.InstanceOf<IOException>().With.Message.Contains(JournalFaultPoint.AppendAfterBlocksVariable),
                "the fourth append fails");
            Assert.Multiple(() =>
            {
                Assert.That(journal.Fault, Is.Not.Null, "the failure is the journal's fault");
                Assert.That(journal.FaultToken.IsCancellationRequested, Is.True, "and it was told");
                Assert.That(() => journal.Append(Block(new BlockBuilder(third, 100), 1)), Throws.InstanceOf<JournalFaultException>(), "sticky: appends");
                Assert.That(() => journal.WaitDurable(addresses[0]), Throws.InstanceOf<JournalFaultException>(), "sticky: even a block that was durable passes the gate no more");
            });
        }
        using (Journal reopened = Journal.Open(Settings(directory, durability)))
        {
            Assert.That(reopened.Head, Is.EqualTo(third), "what was committed before the fault is kept; the failed block is not there");
            var builder = new BlockBuilder(reopened.Head, 100);
            long address = reopened.Append(Block(builder, 10));
            reopened.WaitDurable(address);
            Assert.That(reopened.Fault, Is.Null, "the fault point was unset at this open: inert");
        }
    }

    [Test]
    public void A_fault_point_that_is_not_a_number_refuses_the_journal()
    {
        Environment.SetEnvironmentVariable(JournalFaultPoint.AppendAfterBlocksVariable, "-1");
        Assert.That(() => Journal.Open(Settings(_temp.Sub("j"), Durability.Memory)).Dispose(),
            Throws.InstanceOf<InvalidOperationException>().With.Message.Contains(JournalFaultPoint.AppendAfterBlocksVariable));
    }

    /// <summary>
    /// A real full disk: a tmpfs of 256 KiB under the journal. FASTER fails the commit that does not
    /// fit; from then on, in memory durability too (where a block counts once appended), nothing more
    /// passes the ack gate, and the fault is told without waiting for the next append.
    /// </summary>
    [Test]
    public void A_full_disk_fails_a_commit_and_nothing_passes_the_gate_after_it([Values] Durability durability)
    {
        string mount = _temp.Sub("tmpfs");
        Directory.CreateDirectory(mount);
        if (!Tmpfs.TryMount(mount, "256k", out string why))
        {
            Assert.Ignore($"no tmpfs here, so no real full disk ({why}); the fault point covers the same path");
        }
        try
        {
            using Journal journal = Journal.Open(Settings(Path.Combine(mount, "j"), durability));
            var told = new ManualResetEventSlim();
            using CancellationTokenRegistration registration = journal.FaultToken.Register(told.Set);
            var builder = new BlockBuilder(journal.Head, 100);
            long first = -1;
            var clock = Stopwatch.StartNew();
            // 256 KiB hold about 40 blocks of 100 transactions; a bounded loop, each block waited for in
            // disk durability, appended back to back in memory durability until the committer fails.
            for (int i = 0; i < 400 && journal.Fault is null; i++)
            {
                try
                {
                    long address = journal.Append(Block(builder, 100));
                    first = first < 0 ? address : first;
                    if (durability == Durability.Disk)
                    {
                        journal.WaitDurable(address);
                    }
                }
                catch (JournalFaultException)
                {
                    break;
                }
            }
            Until.True(() => journal.Fault is not null, "the journal to fail a commit on the full disk");
            Assert.Multiple(() =>
            {
                Assert.That(told.Wait(TimeSpan.FromSeconds(10)), Is.True, "the fault is told on FaultToken");
                Assert.That(() => journal.WaitDurable(first), Throws.InstanceOf<IOException>(), "nothing passes the gate after the fault, in either durability");
                Assert.That(() => journal.Append(Block(builder, 1)), Throws.InstanceOf<IOException>(), "nothing more is taken");
            });
        }
        finally
        {
            Tmpfs.Unmount(mount);
        }
    }

    private static ReadOnlySpan<byte> Block(BlockBuilder builder, int transactions)
    {
        for (int i = 0; i < transactions; i++)
        {
            ulong seq = builder.Head.LastLsn + (ulong)builder.Count + 1;
            var tx = Transaction.NewOrder(1, seq, 1, 1, seq, Side.Buy, OrderType.Limit, TimeInForce.Gtc, 990, 1);
            builder.Add(in tx);
        }
        return builder.Seal(1, out _);
    }

    /// <summary>Mounts a tmpfs (root only): the one way to get a real ENOSPC without filling the machine's disk.</summary>
    internal static class Tmpfs
    {
        public static bool TryMount(string directory, string size, out string why)
        {
            (int code, string output) = Run("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", directory);
            why = code == 0 ? "" : $"mount -t tmpfs exited {code}: {output.Trim()}";
            return code == 0;
        }

        public static void Unmount(string directory)
        {
            if (Run("umount", directory).Code != 0)
            {
                Run("umount", "-l", directory); // still busy (a file left open by a failing test): detach it
            }
        }

        private static (int Code, string Output) Run(string file, params string[] args)
        {
            try
            {
                var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
                foreach (string arg in args)
                {
                    info.ArgumentList.Add(arg);
                }
                using Process process = Process.Start(info)!;
                string output = process.StandardError.ReadToEnd() + process.StandardOutput.ReadToEnd();
                process.WaitForExit();
                return (process.ExitCode, output);
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                return (-1, e.Message);
            }
        }
    }
}
