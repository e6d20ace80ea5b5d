namespace Engine.Core.Journaling;

/// <summary>
/// Replacing a small file so that a crash leaves either the old content or the new, never a mix:
/// the new content goes to a temporary name beside it, is flushed to disk, and is renamed over the
/// old (a rename is atomic within a directory). The directory entry itself is not synced: after a
/// power loss the rename may be undone (the old content comes back), which every caller tolerates.
/// </summary>
public static class DurableFile
{
    /// <summary>The suffix of a replacement still being written (left behind only by a crash; the next replace overwrites it).</summary>
    public const string TemporarySuffix = ".tmp";

    /// <summary>
    /// Writes <paramref name="content"/> to <paramref name="path"/>, replacing what was there, as
    /// described above. Without <paramref name="flushToDisk"/> the content is not synced before the
    /// rename: for a file whose loss or damage after a power cut costs only work done again (its
    /// reader checks it and starts over), and which is written too often for an fsync each time.
    /// </summary>
    public static void Replace(string path, ReadOnlySpan<byte> content, bool flushToDisk = true)
    {
        string temporary = path + TemporarySuffix;
        using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            file.Write(content);
            file.Flush(flushToDisk);
        }
        File.Move(temporary, path, overwrite: true);
    }
}
