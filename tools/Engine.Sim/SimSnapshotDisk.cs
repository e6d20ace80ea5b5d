using Engine.Core.Journaling;

namespace Engine.Sim;

/// <summary>
/// A simulated node's snapshot files: they outlive its crashes, as the journal's device does, and
/// go with the journal when a diverged one is set aside. A replacement is whole or absent (the real
/// medium writes a temporary file, syncs and renames it); what the simulator injects: a write that
/// fails (a full disk: the old files stay) and a snapshot file damaged at rest (a torn or rotted
/// sector), which loading must refuse and pass over.
/// </summary>
public sealed class SimSnapshotDisk(string node) : ISnapshotMedium
{
    private readonly SortedDictionary<string, byte[]> _files = new(StringComparer.Ordinal);

    public string Where => $"{node}/snapshots";

    /// <summary>The next write fails (set by the simulator).</summary>
    public bool FailNextWrite { get; set; }

    public int Count => _files.Count;

    public IReadOnlyList<string> Names() => [.. _files.Keys];

    public byte[] Read(string name) => _files.TryGetValue(name, out byte[]? bytes) ? (byte[])bytes.Clone() : throw new FileNotFoundException($"simulated: no {name}");

    public void Replace(string name, ReadOnlySpan<byte> content)
    {
        if (FailNextWrite)
        {
            FailNextWrite = false;
            throw new IOException($"simulated: writing {name} failed (the disk is full); the old files stay");
        }
        _files[name] = content.ToArray();
    }

    public void Delete(string name) => _files.Remove(name);

    /// <summary>The journal was set aside (a diverged chain): its snapshots went with it.</summary>
    public void Clear() => _files.Clear();

    public int DeleteLeftovers() => 0;

    /// <summary>Flips one byte of the newest snapshot (at <paramref name="random"/>'s offset); false when there is none.</summary>
    public bool DamageNewest(Random random)
    {
        if (_files.Count == 0)
        {
            return false;
        }
        byte[] newest = _files[_files.Keys.Last()];
        newest[random.Next(newest.Length)] ^= (byte)(1 << random.Next(8));
        return true;
    }
}
