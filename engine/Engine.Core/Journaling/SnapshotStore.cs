using System.Globalization;
using Engine.Core.Book;
using Engine.Protocol;

namespace Engine.Core.Journaling;

/// <summary>A snapshot that loaded and verified: the state, where it stands, and its file.</summary>
public sealed record LoadedSnapshot(Exchange Exchange, SnapshotHeader Header, string Path);

/// <summary>
/// A node's snapshots on disk: one file per snapshot, <c>snapshot-BLOCK.snap</c> (the block number in
/// 20 digits, so names sort as blocks do), in a directory of their own beside the journal. A file is
/// written whole or not at all (<see cref="DurableFile"/>); loading takes the newest that verifies
/// and reports each damaged one it passes over, never trusting one silently; pruning keeps the newest
/// <see cref="Retain"/>.
/// </summary>
public sealed class SnapshotStore
{
    public const string Extension = ".snap";
    private const string Prefix = "snapshot-";

    private readonly ISnapshotMedium _medium;

    /// <summary>Snapshots in <paramref name="directory"/>.</summary>
    public SnapshotStore(string directory, int retain)
        : this(new DirectorySnapshotMedium(directory), retain)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
    }

    /// <summary>Snapshots on <paramref name="medium"/> (the simulator's disk).</summary>
    public SnapshotStore(ISnapshotMedium medium, int retain)
    {
        ArgumentNullException.ThrowIfNull(medium);
        ArgumentOutOfRangeException.ThrowIfLessThan(retain, 1);
        _medium = medium;
        Retain = retain;
    }

    /// <summary>Where the snapshots are (a directory), for messages.</summary>
    public string Directory => _medium.Where;

    /// <summary>How many snapshots <see cref="Prune"/> keeps (at least one).</summary>
    public int Retain { get; }

    /// <summary>The file name of the snapshot taken after block <paramref name="blockNo"/>.</summary>
    public static string NameOf(ulong blockNo) => string.Create(CultureInfo.InvariantCulture, $"{Prefix}{blockNo:D20}{Extension}");

    /// <summary>Where the snapshot taken after block <paramref name="blockNo"/> lives (its path, on a directory).</summary>
    public string PathOf(ulong blockNo) => Path.Combine(_medium.Where, NameOf(blockNo));

    /// <summary>Writes a snapshot taken after block <paramref name="blockNo"/> (see <see cref="Exchange.WriteSnapshot"/>); returns its path.</summary>
    public string Save(ReadOnlySpan<byte> snapshot, ulong blockNo)
    {
        _medium.Replace(NameOf(blockNo), snapshot);
        return PathOf(blockNo);
    }

    /// <summary>The snapshots present, newest first. A file whose name is not a snapshot's is not one and is left alone.</summary>
    public IReadOnlyList<(ulong BlockNo, string Path)> List()
    {
        var found = new List<(ulong BlockNo, string Path)>();
        foreach (string name in _medium.Names())
        {
            if (name.Length == Prefix.Length + 20 + Extension.Length && name.StartsWith(Prefix, StringComparison.Ordinal) && name.EndsWith(Extension, StringComparison.Ordinal)
                && ulong.TryParse(name.AsSpan(Prefix.Length, 20), NumberStyles.None, CultureInfo.InvariantCulture, out ulong blockNo))
            {
                found.Add((blockNo, PathOf(blockNo)));
            }
        }
        found.Sort((a, b) => b.BlockNo.CompareTo(a.BlockNo));
        return found;
    }

    /// <summary>
    /// Loads the newest snapshot that verifies (<see cref="Exchange.ReadSnapshot"/>, and the block in its
    /// header is the one in its name); each one that does not is told to <paramref name="log"/>, with
    /// why, and passed over for the next older. Null when none does: recovery starts from genesis.
    /// </summary>
    public LoadedSnapshot? LoadNewest(Action<string> log) => LoadNewestFirst(log).FirstOrDefault();

    /// <summary>
    /// The snapshots that verify, newest first, each loaded only when the caller asks for it (the one
    /// before was of no use to it); those that do not verify are told to <paramref name="log"/> and passed over.
    /// </summary>
    /// <param name="log">Where each snapshot passed over is told, with why.</param>
    /// <param name="below">Only snapshots taken before this block (those from it on were tried already).</param>
    public IEnumerable<LoadedSnapshot> LoadNewestFirst(Action<string> log, ulong below = ulong.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(log);
        foreach ((ulong blockNo, _) in List())
        {
            if (blockNo < below && TryLoad(blockNo, null, log, "; trying the next older") is { } loaded)
            {
                yield return loaded;
            }
        }
    }

    /// <summary>
    /// Loads the snapshot taken after block <paramref name="blockNo"/> if it verifies and stands after
    /// the block whose hash is <paramref name="blockHash"/> (the one a journal was anchored at); null,
    /// told to <paramref name="log"/> with why, when it is missing or does not.
    /// </summary>
    public LoadedSnapshot? Load(ulong blockNo, in Hash32 blockHash, Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(log);
        return TryLoad(blockNo, blockHash, log, "");
    }

    /// <summary>
    /// The newest snapshot whose bytes are intact (<see cref="Exchange.ReadSnapshotHeader"/>: its
    /// SHA-256 and version; not loaded), with its header, for a backup that installs it; those that
    /// are not are told to <paramref name="log"/> and passed over. Null when there is none.
    /// </summary>
    public (byte[] Content, SnapshotHeader Header)? NewestIntact(Action<string> log)
    {
        ArgumentNullException.ThrowIfNull(log);
        foreach ((ulong blockNo, string path) in List())
        {
            try
            {
                byte[] content = _medium.Read(NameOf(blockNo));
                SnapshotHeader header = Exchange.ReadSnapshotHeader(content);
                if (header.BlockNo == blockNo)
                {
                    return (content, header);
                }
                log($"snapshot {path} not sent: it stands after block {header.BlockNo}, its name says {blockNo}");
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                log($"snapshot {path} not sent: {e.Message}");
            }
        }
        return null;
    }

    /// <summary>The one way a snapshot file is read and checked: its contents, the block its name says, and (when given) the block's hash.</summary>
    private LoadedSnapshot? TryLoad(ulong blockNo, Hash32? blockHash, Action<string> log, string then)
    {
        string path = PathOf(blockNo);
        try
        {
            Exchange exchange = Exchange.ReadSnapshot(_medium.Read(NameOf(blockNo)), out SnapshotHeader header);
            if (header.BlockNo != blockNo || (blockHash is { } hash && header.BlockHash != hash))
            {
                throw new InvalidDataException(blockHash is { } h
                    ? $"it stands after block {header.BlockNo} of hash {header.BlockHash.ToShortString()}, not block {blockNo} of hash {h.ToShortString()}"
                    : $"it stands after block {header.BlockNo}, its name says {blockNo}");
            }
            return new LoadedSnapshot(exchange, header, path);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            log($"snapshot {path} not used: {e.Message}{then}");
            return null;
        }
    }

    /// <summary>Deletes all but the newest <see cref="Retain"/> snapshots, and replacements a crash left half-written; returns how many files went.</summary>
    public int Prune()
    {
        int deleted = 0;
        foreach ((ulong blockNo, _) in List().Skip(Retain))
        {
            _medium.Delete(NameOf(blockNo));
            deleted++;
        }
        return deleted + _medium.DeleteLeftovers();
    }
}
