using System.Text;
using CsCheck;
using Engine.Cli;
using Engine.Core.Book;
using Engine.Core.Server;
using Microsoft.Extensions.Configuration;

namespace Engine.Tests.Fuzz;

/// <summary>
/// The JSON configuration's reference data (<c>engine serve --config</c>), hostile: random bytes,
/// random JSON, and a valid configuration with values swapped for wrong types, out-of-range and
/// huge numbers, nulls, nesting and duplicates. Reading it either gives reference data a node can
/// start with (a book and a client registry are made from it) or refuses it with one of the
/// documented exceptions (<see cref="ArgumentException"/>, <see cref="InvalidDataException"/>,
/// <see cref="FormatException"/>), which <c>engine serve</c> reports as a clear error; never
/// anything else, which would crash it with a stack trace. How long: <see cref="FuzzRun"/>.
/// </summary>
public class ConfigFuzzTests
{
    private static readonly string[] s_keys = ["Id", "Symbol", "TickSize", "MaxOrderQuantity", "MaxOrderNotional", "MaxOpenOrders", "Token", "Accounts", "Instruments", "Clients", "x", ""];

    private static readonly Gen<string> s_scalar = Gen.OneOf(
        Gen.OneOf("0", "-1", "1", "2", "65535", "65536", "2147483647", "2147483648", "4294967295", "4294967296", "9223372036854775807",
            "9223372036854775808", "-9223372036854775809", "1e308", "-1e400", "0.5", "1E3", "true", "false", "null",
            "\"\"", "\"1\"", "\"-1\"", "\"abc\"", "\"\\u0000\"", "\"1e3\"", "\"0x10\"", "\"99999999999999999999999\"", $"\"{new string('t', 40)}\""),
        Gen.Long.Select(l => l.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        Gen.UInt.Select(u => u.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    private static readonly Gen<string> s_json = Gen.Recursive<string>((depth, self) => depth >= 3
        ? s_scalar
        : Gen.Frequency(
            (4, s_scalar),
            (2, self.Array[0, 4].Select(items => $"[{string.Join(",", items)}]")),
            (3, Gen.Select(Gen.OneOf(s_keys), self).Array[0, 5].Select(members => $"{{{string.Join(",", members.Select(m => $"\"{m.Item1}\":{m.Item2}"))}}}"))));

    /// <summary>A valid entry of each list, one of whose fields may be replaced by anything.</summary>
    private static Gen<string> Entry(params (string Key, string Value)[] valid) =>
        Gen.Select(Gen.Int[-1, valid.Length - 1], s_json, Gen.Bool, (replace, value, drop) =>
        {
            IEnumerable<(string Key, string Value)> fields = valid.Select((f, i) => i == replace ? (f.Key, value) : f);
            if (drop && replace >= 0)
            {
                fields = fields.Where((_, i) => i != replace);
            }
            return $"{{{string.Join(",", fields.Select(f => $"\"{f.Key}\":{f.Value}"))}}}";
        });

    private static Gen<string> List(Gen<string> entry) => Gen.Frequency(
        (12, entry.Array[1, 3].Select(entries => $"[{string.Join(",", entries)}]")),
        (1, Gen.Const("[]")),
        (1, Gen.Const("[null]")),
        (2, s_json));

    private static readonly Gen<string> s_config = Gen.Select(
        List(Entry(("Id", "1"), ("Symbol", "\"ACME\""), ("TickSize", "1"))),
        List(Entry(("Id", "1"), ("MaxOrderQuantity", "1000"), ("MaxOrderNotional", "100000"), ("MaxOpenOrders", "10"))),
        List(Entry(("Id", "1"), ("Token", "\"secret\""), ("Accounts", "[1]"))),
        // Mostly all three sections (only then is each entry checked), sometimes some left out.
        Gen.Frequency((8, Gen.Const(0)), (2, Gen.Int[1, 7])),
        (instruments, accounts, clients, omit) =>
        {
            var sections = new List<string>();
            if ((omit & 1) == 0)
            {
                sections.Add($"\"Instruments\":{instruments}");
            }
            if ((omit & 2) == 0)
            {
                sections.Add($"\"Accounts\":{accounts}");
            }
            if ((omit & 4) == 0)
            {
                sections.Add($"\"Clients\":{clients}");
            }
            return $"{{{string.Join(",", sections)}}}";
        });

    private static readonly Gen<byte[]> s_document = Gen.Frequency(
        (7, s_config.Select(Encoding.UTF8.GetBytes)),
        (2, s_json.Select(Encoding.UTF8.GetBytes)),
        (1, Gen.Byte.Array[0, 200]));

    /// <summary>Reads a configuration file as <c>engine serve --config</c> does (a JSON file, which wraps a parse error in InvalidDataException).</summary>
    private static IConfiguration FromFile(string directory, byte[] document)
    {
        string file = Path.Combine(directory, $"{Guid.NewGuid():N}.json");
        File.WriteAllBytes(file, document);
        try
        {
            return new ConfigurationBuilder().AddJsonFile(file, optional: false).Build();
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static IConfiguration FromJson(string json) => new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();

    [Test]
    public void Hostile_reference_data_is_loaded_or_refused_with_a_documented_error()
    {
        using var directory = new Support.TempDirectory("config-fuzz");
        s_document.Sample(document =>
        {
            ReferenceData reference;
            try
            {
                reference = ReferenceConfig.Load(FromFile(directory.Path, document), "fuzz.json");
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException or FormatException)
            {
                return;
            }
            // Loaded: a node can be made from it.
            _ = new Exchange(reference);
            _ = new ClientRegistry(reference.Clients.Select(c => c.ClientId));
        }, seed: FuzzRun.Seed, iter: FuzzRun.Iterations(500), print: bytes => Encoding.UTF8.GetString(bytes));
    }

    [Test]
    public void The_valid_configuration_and_an_empty_one_load()
    {
        const string Valid = """{"Instruments":[{"Id":1,"Symbol":"ACME","TickSize":1}],"Accounts":[{"Id":1}],"Clients":[{"Id":1,"Token":"secret","Accounts":[1]}]}""";
        ReferenceData reference = ReferenceConfig.Load(FromJson(Valid), null);
        Assert.That(reference.Authenticate(1, "secret"), Is.True);
        ReferenceData development = ReferenceConfig.Load(FromJson("{}"), null);
        Assert.That(development.Source, Does.Contain("development"));
    }

    [TestCase("""{"Instruments":[{"Id":2147483648}],"Accounts":[{"Id":1}],"Clients":[{"Id":1,"Token":"t","Accounts":[1]}]}""", typeof(ArgumentException))]
    [TestCase("""{"Instruments":[{"Id":1}],"Accounts":[{"Id":1}],"Clients":[{"Id":65536,"Token":"t","Accounts":[1]}]}""", typeof(ArgumentException))]
    [TestCase("""{"Instruments":[{"Id":"abc"}],"Accounts":[{"Id":1}],"Clients":[{"Id":1,"Token":"t","Accounts":[1]}]}""", typeof(InvalidDataException))]
    [TestCase("""{"Instruments":[{"Id":1}],"Accounts":[{"Id":-1}],"Clients":[{"Id":1,"Token":"t","Accounts":[1]}]}""", typeof(InvalidDataException))]
    public void Known_hostile_values_are_refused_by_name(string json, Type expected)
    {
        Exception? thrown = Assert.Catch(() => ReferenceConfig.Load(FromJson(json), null));
        Assert.That(thrown, Is.InstanceOf(expected), thrown?.ToString());
    }
}
