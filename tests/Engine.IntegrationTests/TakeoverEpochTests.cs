using Engine.IntegrationTests.Support;
using Engine.Replication;

namespace Engine.IntegrationTests;

/// <summary>
/// A takeover claims an epoch above every epoch the pair has used, also one in which no block was
/// sealed: found by the simulator (tools/Engine.Sim, seed 1 of its first run), where a node taking over
/// from an idle primary claimed the idle primary's own epoch again: two primaries in one epoch, and
/// with a witness neither fenced.
/// </summary>
public class TakeoverEpochTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Test]
    public void A_takeover_from_a_primary_that_sealed_nothing_claims_the_next_epoch_not_its_own()
    {
        string root = Path.Combine(Path.GetTempPath(), $"epochs-{Guid.NewGuid():N}");
        int portA = Ports.Free(), portB = Ports.Free(), replicationA = Ports.Free(), replicationB = Ports.Free();
        string[] NodeA(string role) => ["serve", "--role", role, "--data", Path.Combine(root, "a"), "--listen", $"127.0.0.1:{portA}",
            "--peer", $"127.0.0.1:{replicationB}", "--replication-listen", $"127.0.0.1:{replicationA}", "--allow-solo"];
        try
        {
            using var a = EngineProcess.Start(NodeA("primary"));
            using var b = EngineProcess.Start("serve", "--role", "backup", "--data", Path.Combine(root, "b"), "--listen", $"127.0.0.1:{portB}",
                "--peer", $"127.0.0.1:{replicationA}", "--replication-listen", $"127.0.0.1:{replicationB}", "--allow-solo");
            a.WaitForEvent(PairEventKind.BackupInStep, "B in step with A", Wait);
            // A says so once it has sent the end of the catch-up; B takes over only once it has read it
            // (a loaded machine showed the gap: A killed first, B never in step, and rightly no takeover).
            b.WaitForEvent(PairEventKind.InStep, "B to know it is in step", Wait);

            // No order at all: B takes over in epoch 2 and seals nothing in it.
            a.KillHard();
            Assert.That(b.WaitForEvent(PairEventKind.TakeOver, "B to take over", Wait).Epoch, Is.EqualTo(2UL));
            a.Dispose();
            int mark = b.EventCount;
            using var rejoined = EngineProcess.Start(NodeA("backup"));
            b.WaitForEvent(PairEventKind.BackupInStep, "A in step with B", Wait, since: mark);
            rejoined.WaitForEvent(PairEventKind.InStep, "A to know it is in step", Wait);

            // B dies idle too: A must claim epoch 3. Epoch 2 is B's, though no block of it exists.
            b.KillHard();
            PairEvent takeOver = rejoined.WaitForEvent(PairEventKind.TakeOver, "A to take over", Wait);
            Assert.That(takeOver.Epoch, Is.EqualTo(3UL), rejoined.LogText);
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }
}
