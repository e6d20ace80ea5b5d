using System.Text.Json;
using System.Text.Json.Serialization;

namespace Engine.Core.Journaling;

/// <summary>
/// <c>journal.json</c>: what a reader must know before it can find the entries (FASTER never spans
/// an entry across pages, so the page size decides where each one is), plus the genesis hash.
/// Written once, after the genesis block is committed; its presence means "this journal exists".
/// </summary>
public sealed record JournalGeometry(
    [property: JsonPropertyName("page_size_bits")] int PageSizeBits,
    [property: JsonPropertyName("segment_size_bits")] int SegmentSizeBits,
    [property: JsonPropertyName("genesis_hash")] string GenesisHash)
{
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
