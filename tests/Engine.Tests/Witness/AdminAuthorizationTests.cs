using System.Text;
using CsCheck;
using Engine.Replication;

namespace Engine.Tests.Witness;

/// <summary>The admin endpoint's Authorization header: the exact form parses, everything else is refused with a reason, nothing throws.</summary>
public class AdminAuthorizationTests
{
    /// <summary>Seeded: a failure prints the seed, and the same seed replays it.</summary>
    private const string Seed = "3mVhq8Zr0TtB";

    private static readonly byte[] s_fakeSignature = [.. Enumerable.Range(0, 64).Select(i => (byte)(i * 37))];

    private static string Valid(string name = "operator", long ts = 1_764_633_600_000) =>
        AdminAuthorization.Create(name, ts, "POST", "127.0.0.1:7401", "/admin/go-solo?minutes=10", [], _ => s_fakeSignature);

    [Test]
    public void A_created_header_parses_back()
    {
        string header = Valid();
        Assert.That(AdminAuthorization.TryParse(header, out AdminAuthorization? parsed, out string error), Is.True, error);
        Assert.That(parsed!.Name, Is.EqualTo("operator"));
        Assert.That(parsed.TimestampMs, Is.EqualTo(1_764_633_600_000));
        Assert.That(parsed.Nonce, Has.Length.EqualTo(AdminAuthorization.NonceChars));
        Assert.That(parsed.Signature, Is.EqualTo(s_fakeSignature));
        Assert.That(Valid(), Is.Not.EqualTo(header), "a fresh nonce each time");
    }

    [Test]
    public void The_signed_bytes_cover_method_host_path_body_time_nonce_and_name()
    {
        byte[] Signed(string name = "op", long ts = 1, string nonce = "n", string method = "POST", string host = "h:1", string path = "/admin/go-solo", string body = "") =>
            AdminAuthorization.SignedBytes(name, ts, nonce, method, host, path, Encoding.UTF8.GetBytes(body));
        byte[] reference = Signed();
        byte[][] others = [Signed(name: "op2"), Signed(ts: 2), Signed(nonce: "m"), Signed(method: "GET"), Signed(host: "h:2"), Signed(path: "/admin/go-solo?minutes=60"), Signed(body: "x")];
        foreach (byte[] other in others)
        {
            Assert.That(other, Is.Not.EqualTo(reference));
        }
    }

    [TestCase(null)]
    [TestCase("")]
    [TestCase("Bearer abc")]
    [TestCase("Engine-Ed25519")]
    [TestCase("Engine-Ed25519 ")]
    [TestCase("engine-ed25519 name=a,ts=1,nonce=00000000000000000000000000000000,sig=AAAA")]
    public void Missing_or_foreign_headers_are_refused(string? header)
    {
        Assert.That(AdminAuthorization.TryParse(header, out AdminAuthorization? parsed, out string error), Is.False);
        Assert.That(parsed, Is.Null);
        Assert.That(error, Is.Not.Empty);
    }

    [Test]
    public void Each_field_must_be_exact()
    {
        string good = Valid();
        string sig = good[(good.IndexOf(",sig=", StringComparison.Ordinal) + 5)..];
        string nonce = good.Split(",nonce=")[1].Split(',')[0];
        string[] bad =
        [
            good.Replace("name=operator", "name=", StringComparison.Ordinal),
            good.Replace("name=operator", "name=op erator", StringComparison.Ordinal),
            good.Replace("name=operator", "name=op/erator", StringComparison.Ordinal),
            good.Replace("name=operator", "name=-", StringComparison.Ordinal),
            good.Replace("ts=1764633600000", "ts=01764633600000", StringComparison.Ordinal),
            good.Replace("ts=1764633600000", "ts=-1764633600000", StringComparison.Ordinal),
            good.Replace("ts=1764633600000", "ts=17646336000000000000", StringComparison.Ordinal),
            good.Replace(nonce, "A" + nonce[1..], StringComparison.Ordinal),
            good.Replace(nonce, nonce[..^1], StringComparison.Ordinal),
            good.Replace(nonce, nonce + "0", StringComparison.Ordinal),
            good.Replace(sig, sig[..^1], StringComparison.Ordinal),
            good.Replace(sig, sig + "==", StringComparison.Ordinal),
            good.Replace(sig, sig[..^1] + "/", StringComparison.Ordinal),
            good + ",extra=1",
            good.Replace(",ts=", ",ts=1,ts=", StringComparison.Ordinal),
            good.Replace("name=operator,", "", StringComparison.Ordinal),
            good.Replace(", ", ",", StringComparison.Ordinal).Replace(",ts", ", ts", StringComparison.Ordinal),
            good.Replace("Engine-Ed25519 ", "Engine-Ed25519  ", StringComparison.Ordinal),
            good + new string('A', AdminAuthorization.MaxHeaderChars),
            good.Replace("operator", "opérateur", StringComparison.Ordinal),
            good + "\r\nX-Injected: 1",
        ];
        foreach (string header in bad)
        {
            Assert.That(AdminAuthorization.TryParse(header, out _, out string error), Is.False, header);
            Assert.That(error, Is.Not.Empty);
        }
    }

    [Test]
    public void Fuzz_random_strings_never_throw_and_are_refused()
    {
        Gen.String[Gen.Char, 0, 600].Sample(header =>
        {
            bool ok = AdminAuthorization.TryParse(header, out AdminAuthorization? parsed, out string error);
            return !ok && parsed is null && error.Length > 0;
        }, seed: Seed, iter: 20_000);
    }

    [Test]
    public void Fuzz_mutated_headers_are_refused_or_parse_to_exactly_what_they_say()
    {
        Gen.Select(Gen.Long[0, 9_999_999_999_999], Gen.Int[0, 200], Gen.Char, Gen.Int[0, 2], (ts, at, c, how) =>
        {
            string header = Valid(ts: ts);
            int i = Math.Min(at, header.Length - 1);
            return how switch
            {
                0 => header.Remove(i, 1).Insert(i, c.ToString()),
                1 => header.Insert(i, c.ToString()),
                _ => header.Remove(i, 1),
            };
        }).Sample(header =>
        {
            if (!AdminAuthorization.TryParse(header, out AdminAuthorization? parsed, out string error))
            {
                return parsed is null && error.Length > 0;
            }
            // Accepted: only because the mutation left a header of the exact form; then it says what it parsed to.
            string again = $"{AdminAuthorization.Scheme} name={parsed!.Name},ts={parsed.TimestampMs},nonce={parsed.Nonce},sig={System.Buffers.Text.Base64Url.EncodeToString(parsed.Signature)}";
            return again == header;
        }, seed: Seed, iter: 20_000);
    }

    [Test]
    public void The_nonce_cache_refuses_a_replay_forgets_after_the_window_and_is_bounded()
    {
        var cache = new NonceCache(capacity: 3);
        Assert.That(cache.TryAdd("n1", 1_000), Is.EqualTo(NonceCache.Outcome.Fresh));
        Assert.That(cache.TryAdd("n1", 1_001), Is.EqualTo(NonceCache.Outcome.Replayed));
        Assert.That(cache.TryAdd("n2", 1_002), Is.EqualTo(NonceCache.Outcome.Fresh));
        Assert.That(cache.TryAdd("n3", 1_003), Is.EqualTo(NonceCache.Outcome.Fresh));
        Assert.That(cache.TryAdd("n4", 1_004), Is.EqualTo(NonceCache.Outcome.Full), "never forgets a nonce still in its window to make room");
        Assert.That(cache.TryAdd("n1", 1_000 + (2 * AdminAuthorization.MaxSkewMs) - 1), Is.EqualTo(NonceCache.Outcome.Replayed), "still within the window");
        Assert.That(cache.TryAdd("n4", 1_000 + (2 * AdminAuthorization.MaxSkewMs)), Is.EqualTo(NonceCache.Outcome.Fresh), "n1 forgotten: room again");
        Assert.That(cache.Count, Is.EqualTo(3));
    }
}
