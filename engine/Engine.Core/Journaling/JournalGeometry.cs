using System.Text.Json;
using System.Text.Json.Serialization;

namespace Engine.Core.Journaling;

/// <summary>
/// <c>journal.json</c>: what a reader must know before it can find the entries (FASTER never spans
/// an entry across pages, so the page size decides where each one is), plus the genesis hash, and
/// the journal's base when it does not start at genesis. Written once the first block is committed
/// (its presence means "this journal exists"), and again before compaction moves the base.
/// </summary>
/// <param name="PageSizeBits">log2 of FASTER's page: where entries are.</param>
/// <param name="SegmentSizeBits">log2 of FASTER's segment files: what compaction frees at a time.</param>
/// <param name="GenesisHash">The genesis block's hash; null for a journal installed from a snapshot (it never held genesis).</param>
public sealed record JournalGeometry(
    [property: JsonPropertyName("page_size_bits")] int PageSizeBits,
    [property: JsonPropertyName("segment_size_bits")] int SegmentSizeBits,
    [property: JsonPropertyName("genesis_hash")] string? GenesisHash)
{
    /// <summary>
    /// The block the journal's chain starts at when not genesis: a journal installed from a
    /// snapshot starts at the snapshot's block, and compaction moves it up to the oldest retained
    /// snapshot's. The chain is verified from it, trusted as genesis is; blocks before it (FASTER
    /// frees them a segment at a time) are not read.
    /// </summary>
    [JsonPropertyName("base_block_no")]
    public ulong? BaseBlockNo { get; init; }

    /// <summary>The base block's hash (hex), with <see cref="BaseBlockNo"/>.</summary>
    [JsonPropertyName("base_hash")]
    public string? BaseHash { get; init; }

    /// <summary>The base as an anchor; null: the journal starts at genesis.</summary>
    [JsonIgnore]
    public JournalAnchor? Base => BaseBlockNo is { } blockNo && BaseHash is { } hash ? new JournalAnchor(blockNo, Engine.Protocol.Hash32.Parse(hash)) : null;

    /// <summary>This geometry with <paramref name="journalBase"/> as its base.</summary>
    public JournalGeometry WithBase(JournalAnchor journalBase) => this with { BaseBlockNo = journalBase.BlockNo, BaseHash = journalBase.Hash.ToString() };

    public const string FileName = "journal.json";

    private static readonly JsonSerializerOptions s_indented = new() { WriteIndented = true };

    [JsonPropertyName("format")]
    public int Format { get; init; } = 1;

    public static JournalGeometry? TryRead(string directory)
    {
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            JournalGeometry geometry = JsonSerializer.Deserialize<JournalGeometry>(File.ReadAllText(path))
                ?? throw new JsonException("empty");
            if (geometry.Format != 1 || geometry.PageSizeBits is < 12 or > 30 || geometry.SegmentSizeBits < geometry.PageSizeBits)
            {
                throw new JsonException($"unsupported format {geometry.Format} or geometry page 2^{geometry.PageSizeBits}, segment 2^{geometry.SegmentSizeBits}");
            }
            if ((geometry.BaseBlockNo is null) != (geometry.BaseHash is null) || (geometry.BaseHash is { } hash && (hash.Length != 64 || !hash.All(char.IsAsciiHexDigit))))
            {
                throw new JsonException("base_block_no and base_hash (64 hex digits) go together");
            }
            return geometry;
        }
        catch (JsonException e)
        {
            throw new JournalCorruptException($"'{path}' is unreadable: {e.Message}", null, e);
        }
    }

    /// <summary>Writes the file durably (<see cref="DurableFile.Replace"/>).</summary>
    public void Write(string directory) =>
        DurableFile.Replace(Path.Combine(directory, FileName), JsonSerializer.SerializeToUtf8Bytes(this, s_indented));
}
