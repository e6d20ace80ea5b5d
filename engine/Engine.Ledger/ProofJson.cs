using System.Text.Json;
using Engine.Protocol;

namespace Engine.Ledger;

/// <summary>The JSON of the ledger's proofs (inclusion, consistency): bounded reads of their fields, hex for bytes; a field that is not what it must be throws <see cref="InvalidDataException"/>.</summary>
internal static class ProofJson
{
    /// <summary>
    /// Reads a proof's JSON: at most <paramref name="maxBytes"/>, an object of <paramref name="format"/>
    /// with its <c>cluster_id</c>; <paramref name="read"/> takes the rest (a field it finds wrong throws,
    /// and becomes the reason). Null and why when it is not such a proof; never throws on what it reads.
    /// </summary>
    public static T? Parse<T>(ReadOnlySpan<byte> utf8, int maxBytes, string format, Func<JsonElement, ClusterId, T> read, out string? wrong) where T : class
    {
        if (utf8.Length > maxBytes)
        {
            wrong = $"{utf8.Length:N0} bytes is larger than any proof of this kind ({maxBytes:N0})";
            return null;
        }
        try
        {
            using JsonDocument document = JsonDocument.Parse(utf8.ToArray(), new JsonDocumentOptions { MaxDepth = 4 });
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                wrong = "not a JSON object";
                return null;
            }
            if (Text(root, "format") != format)
            {
                wrong = $"not a proof of this format (\"format\": \"{format}\" expected)";
                return null;
            }
            if (!ClusterId.TryParse(Text(root, "cluster_id"), out ClusterId cluster))
            {
                wrong = "cluster_id: 32 hex digits expected";
                return null;
            }
            T proof = read(root, cluster);
            wrong = null;
            return proof;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidDataException or InvalidOperationException)
        {
            wrong = e.Message;
            return null;
        }
    }

    /// <summary>A signed head in hex (136 bytes); throws <see cref="InvalidDataException"/> naming the field when it is not one.</summary>
    public static SignedHead Head(JsonElement root, string name) =>
        SignedHead.TryRead(Hex(root, name, SignedHead.Bytes, SignedHead.Bytes), out string? wrong) ?? throw new InvalidDataException($"{name}: {wrong}");

    /// <summary>Writes a proof's JSON: its format and cluster, then <paramref name="fields"/>.</summary>
    public static byte[] Write(string format, ClusterId cluster, Action<Utf8JsonWriter> fields)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("format", format);
            json.WriteString("cluster_id", cluster.ToString());
            fields(json);
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    public static void WritePath(Utf8JsonWriter json, string name, Hash32[] path)
    {
        json.WriteStartArray(name);
        foreach (Hash32 hash in path)
        {
            json.WriteStringValue(hash.ToString());
        }
        json.WriteEndArray();
    }

    public static string Text(JsonElement root, string name) =>
        root.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : throw new InvalidDataException($"{name}: a string expected");

    public static ulong Number(JsonElement root, string name) =>
        root.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.Number && value.TryGetUInt64(out ulong number) && number <= long.MaxValue
            ? number : throw new InvalidDataException($"{name}: a whole number expected");

    public static byte[] Hex(JsonElement root, string name, int min, int max)
    {
        string text = Text(root, name);
        if (text.Length % 2 != 0 || text.Length / 2 < min || text.Length / 2 > max)
        {
            throw new InvalidDataException($"{name}: {min}{(max != min ? $"-{max}" : "")} bytes in hex expected");
        }
        return Convert.FromHexString(text);
    }

    public static Hash32[] Path(JsonElement root, string name, int maxLength = Merkle.MaxPathLength)
    {
        if (!root.TryGetProperty(name, out JsonElement array) || array.ValueKind != JsonValueKind.Array || array.GetArrayLength() > maxLength)
        {
            throw new InvalidDataException($"{name}: an array of at most {maxLength} hashes expected");
        }
        var path = new Hash32[array.GetArrayLength()];
        int i = 0;
        foreach (JsonElement item in array.EnumerateArray())
        {
            string hex = item.ValueKind == JsonValueKind.String ? item.GetString()! : throw new InvalidDataException($"{name}[{i}]: a hex string expected");
            if (hex.Length != 2 * Hash32.Bytes)
            {
                throw new InvalidDataException($"{name}[{i}]: 32 bytes in hex expected");
            }
            path[i++] = Hash32.From(Convert.FromHexString(hex));
        }
        return path;
    }
}
