namespace Engine.Core.Journaling;

/// <summary>
/// Where a <see cref="SnapshotStore"/> keeps its files: a directory (<see cref="DirectorySnapshotMedium"/>),
/// or, for the deterministic simulator, the simulated node's disk. A file is replaced whole or not at
/// all (a crash leaves the old content or the new).
/// </summary>
public interface ISnapshotMedium
{
    /// <summary>Says where, for messages.</summary>
    string Where { get; }

    /// <summary>The names of the files present (only whole ones: not a replacement still being written).</summary>
    IReadOnlyList<string> Names();

    /// <exception cref="IOException">It cannot be read (or is gone).</exception>
    byte[] Read(string name);

    /// <summary>Writes <paramref name="name"/> whole, replacing what was there; a crash leaves one or the other.</summary>
    /// <exception cref="IOException">It could not be written (the old content, if any, stays).</exception>
    void Replace(string name, ReadOnlySpan<byte> content);

    void Delete(string name);

    /// <summary>Deletes replacements a crash left half-written; returns how many.</summary>
    int DeleteLeftovers();
}

/// <summary>Snapshot files in a directory, each replaced through <see cref="DurableFile"/>.</summary>
public sealed class DirectorySnapshotMedium(string directory) : ISnapshotMedium
{
    public string Where => directory;

    public IReadOnlyList<string> Names() =>
        Directory.Exists(directory) ? [.. Directory.EnumerateFiles(directory).Select(Path.GetFileName).Where(n => !n!.EndsWith(DurableFile.TemporarySuffix, StringComparison.Ordinal))!] : [];

    public byte[] Read(string name) => File.ReadAllBytes(Path.Combine(directory, name));

    public void Replace(string name, ReadOnlySpan<byte> content)
    {
        Directory.CreateDirectory(directory);
        DurableFile.Replace(Path.Combine(directory, name), content);
    }

    public void Delete(string name) => File.Delete(Path.Combine(directory, name));

    public int DeleteLeftovers()
    {
        if (!Directory.Exists(directory))
        {
            return 0;
        }
        int deleted = 0;
        foreach (string partial in Directory.EnumerateFiles(directory, "*" + DurableFile.TemporarySuffix))
        {
            File.Delete(partial);
            deleted++;
        }
        return deleted;
    }
}
