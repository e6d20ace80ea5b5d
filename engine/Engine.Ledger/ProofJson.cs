using System.Text.Json;
using Engine.Protocol;

namespace Engine.Ledger;

/// <summary>The JSON of the ledger's proofs (inclusion, consistency): bounded reads of their fields, hex for bytes; a field that is not what it must be throws <see cref="InvalidDataException"/>.</summary>
internal static class ProofJson
{
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
