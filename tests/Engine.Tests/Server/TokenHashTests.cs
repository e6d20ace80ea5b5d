using System.Diagnostics;
using System.Text;
using Engine.Core.Book;
using Engine.Core.Server;

namespace Engine.Tests.Server;

/// <summary>Tokens kept as salted PBKDF2 hashes: the configuration form, verification, and what is refused.</summary>
public class TokenHashTests
{
    [Test]
    public void A_hash_verifies_its_token_only_and_survives_its_configuration_form()
    {
        TokenHash hash = TokenHash.Create("s3cret-token", iterations: 1000);
        string text = hash.ToString();
        TokenHash parsed = TokenHash.Parse(text);
        Assert.Multiple(() =>
        {
            Assert.That(text, Does.StartWith("pbkdf2-sha256$1000$"));
            Assert.That(text, Does.Not.Contain("s3cret"), "the configuration form holds no clear text");
            Assert.That(parsed.Verify("s3cret-token"), Is.True);
            Assert.That(parsed.Verify(Encoding.UTF8.GetBytes("s3cret-token")), Is.True);
            Assert.That(parsed.Verify("s3cret-tokeN"), Is.False);
            Assert.That(parsed.Verify("s3cret-toke"), Is.False);
            Assert.That(parsed.Verify(""), Is.False);
            Assert.That(TokenHash.Create("s3cret-token", 1000).ToString(), Is.Not.EqualTo(text), "a new salt each time");
        });
    }

    [Test]
    public void A_plaintext_token_is_hashed_at_once_and_marked()
    {
        var client = new ClientEntitlement(7, "dev-token-7", [1]);
        Assert.Multiple(() =>
        {
            Assert.That(client.Credential.FromPlaintextToken, Is.True);
            Assert.That(client.Credential.Iterations, Is.EqualTo(1));
            Assert.That(client.Credential.Verify("dev-token-7"), Is.True);
            Assert.That(client.Credential.ToString(), Does.Not.Contain("dev-token"));
            Assert.That(TokenHash.Create("x").FromPlaintextToken, Is.False);
        });
    }

    [TestCase("")]
    [TestCase("pbkdf2-sha256$1000$AAAA")]
    [TestCase("scrypt$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [TestCase("pbkdf2-sha256$0$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [TestCase("pbkdf2-sha256$-5$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [TestCase("pbkdf2-sha256$99999999999$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [TestCase("pbkdf2-sha256$1000$not base64!$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")]
    [TestCase("pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$AAAA")]
    public void A_malformed_hash_is_refused_with_a_reason(string text)
    {
        Assert.That(() => TokenHash.Parse(text), Throws.InstanceOf<FormatException>().With.Message.Contains("token hash"));
    }

    [TestCase("")]
    [TestCase("123456789012345678901234567890123")] // 33 bytes: more than the logon frame carries
    [TestCase("a\0b")]
    public void A_token_the_logon_frame_cannot_carry_is_refused(string token)
    {
        Assert.That(() => TokenHash.Create(token, 1), Throws.ArgumentException);
    }

    [Test]
    public void New_tokens_are_32_characters_of_url_safe_base64_and_differ()
    {
        string a = TokenHash.NewToken(), b = TokenHash.NewToken();
        Assert.Multiple(() =>
        {
            Assert.That(a, Has.Length.EqualTo(32));
            Assert.That(a, Does.Match("^[A-Za-z0-9_-]{32}$"));
            Assert.That(a, Is.Not.EqualTo(b));
        });
    }

    /// <summary>Not a timing assertion: prints what a logon's check costs at the default iterations, for the record.</summary>
    [Test]
    public void The_default_cost_per_logon_is_printed()
    {
        TokenHash hash = TokenHash.Create("measure-me");
        hash.Verify("measure-me");
        const int Rounds = 20;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < Rounds; i++)
        {
            Assert.That(hash.Verify("measure-me"), Is.True);
        }
        TestContext.Out.WriteLine($"{TokenHash.DefaultIterations} iterations: {clock.Elapsed.TotalMilliseconds / Rounds:F2} ms per logon check");
    }
}
