using Engine.Core.Journaling;
using FASTER.core;

namespace Engine.Tests.Journaling;

/// <summary>
/// Writes entries as they are into a journal directory, as <see cref="Journal"/> lays it out
/// (FASTER segments and commits, <c>journal.json</c>) but without its checks: journals the engine
/// would never write (an old format, a forged block) for the tests of opening and reading them.
/// </summary>
internal static class RawJournal
{
    public static void Write(JournalSettings settings, IEnumerable<byte[]> entries)
    {
        Directory.CreateDirectory(settings.Directory);
        using IDevice device = Devices.CreateLogDevice(Path.Combine(settings.Directory, Journal.SegmentPrefix), preallocateFile: false, deleteOnClose: false);
        using (var log = new FasterLog(new FasterLogSettings
        {
            LogDevice = device,
            LogCommitDir = Path.Combine(settings.Directory, Journal.CommitDirectoryName),
            PageSizeBits = settings.PageSizeBits,
            MemorySizeBits = settings.MemorySizeBits,
            SegmentSizeBits = settings.SegmentSizeBits,
            AutoCommit = false,
            TryRecoverLatest = false,
        }))
        {
            foreach (byte[] entry in entries)
            {
                log.Enqueue(entry);
            }
            log.CommitAsync().AsTask().GetAwaiter().GetResult();
        }
        new JournalGeometry(settings.PageSizeBits, settings.SegmentSizeBits, "written by a test").Write(settings.Directory);
    }
}
