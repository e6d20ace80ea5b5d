using System.Buffers;
using Engine.Core.Book;
using Engine.Core.Journaling;
using Engine.Protocol;
using Engine.Tests.Book;
using Engine.Tests.Support;

namespace Engine.Tests.Journaling;

/// <summary><see cref="SnapshotStore"/>: the newest snapshot that verifies is loaded, a damaged one is reported and passed over, retention prunes.</summary>
public class SnapshotStoreTests
{
    /// <summary>A state after <paramref name="requests"/> requests of a seeded flow, as a snapshot after block <paramref name="blockNo"/>.</summary>
    private static (byte[] Snapshot, Hash32 Checksum) Taken(int requests, ulong blockNo)
    {
        var exchange = new Exchange(ExchangePropertyTests.Reference());
        var sink = new NullSink();
        List<Transaction> flow = ExchangePropertyTests.Flow(11, requests);
        for (int i = 0; i < flow.Count; i++)
        {
            exchange.Apply(flow[i], (ulong)i + 1, blockNo, default, ref sink);
        }
        var buffer = new ArrayBufferWriter<byte>();
        exchange.WriteSnapshot(buffer, blockNo, default);
        return (buffer.WrittenSpan.ToArray(), exchange.ComputeChecksum());
    }

    [Test]
    public void The_newest_snapshot_that_verifies_is_loaded_and_a_damaged_one_is_reported()
    {
        using var temp = new TempDirectory();
        var store = new SnapshotStore(temp.Sub("snapshots"), retain: 3);
        Assert.That(store.LoadNewest(_ => { }), Is.Null, "none yet: start from genesis");
        (byte[] ten, _) = Taken(100, 10);
        (byte[] twenty, Hash32 twentyChecksum) = Taken(200, 20);
        (byte[] thirty, Hash32 thirtyChecksum) = Taken(300, 30);
        store.Save(ten, 10);
        store.Save(twenty, 20);
        string newest = store.Save(thirty, 30);

        LoadedSnapshot? loaded = store.LoadNewest(_ => { });
        Assert.That(loaded?.Header.BlockNo, Is.EqualTo(30UL));
        Assert.That(loaded!.Exchange.ComputeChecksum(), Is.EqualTo(thirtyChecksum));

        byte[] damaged = File.ReadAllBytes(newest);
        damaged[damaged.Length / 2] ^= 0x01;
        File.WriteAllBytes(newest, damaged);
        var said = new List<string>();
        loaded = store.LoadNewest(said.Add);
        Assert.That(loaded?.Header.BlockNo, Is.EqualTo(20UL), "the next older");
        Assert.That(loaded!.Exchange.ComputeChecksum(), Is.EqualTo(twentyChecksum));
        Assert.That(said, Has.Count.EqualTo(1));
        Assert.That(said[0], Does.Contain(newest).And.Contain("SHA-256"));
    }

    [Test]
    public void A_snapshot_under_another_blocks_name_is_not_trusted()
    {
        using var temp = new TempDirectory();
        var store = new SnapshotStore(temp.Sub("snapshots"), retain: 3);
        (byte[] twenty, _) = Taken(200, 20);
        store.Save(twenty, 40); // a name that lies about where it stands
        var said = new List<string>();
        Assert.That(store.LoadNewest(said.Add), Is.Null);
        Assert.That(said.Single(), Does.Contain("its name says 40"));
    }

    [Test]
    public void Pruning_keeps_the_newest_and_clears_half_written_files_but_nothing_else()
    {
        using var temp = new TempDirectory();
        var store = new SnapshotStore(temp.Sub("snapshots"), retain: 2);
        (byte[] snapshot, _) = Taken(50, 5);
        foreach (ulong block in new ulong[] { 5, 6, 7, 8 })
        {
            store.Save(snapshot, block);
        }
        File.WriteAllText(store.PathOf(9) + DurableFile.TemporarySuffix, "a crash while writing");
        File.WriteAllText(Path.Combine(store.Directory, "notes.txt"), "an operator's");
        File.WriteAllText(Path.Combine(store.Directory, "snapshot-x.snap"), "not ours");

        Assert.That(store.Prune(), Is.EqualTo(3));

        Assert.That(store.List().Select(s => s.BlockNo), Is.EqualTo(new ulong[] { 8, 7 }));
        Assert.That(File.Exists(Path.Combine(store.Directory, "notes.txt")) && File.Exists(Path.Combine(store.Directory, "snapshot-x.snap")), Is.True, "other files are left alone");
    }
}
