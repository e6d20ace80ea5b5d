using System.Text;
using CsCheck;
using Engine.Replication;

namespace Engine.Tests.Witness;

/// <summary>The witness protocol's lines: exact forms in, typed values out; everything else refused with a reason, nothing thrown.</summary>
public class WitnessLineTests
{
    /// <summary>Seeded: a failure prints the seed, and the same seed replays it.</summary>
    private const string Seed = "7pQy1ZwN0c3K";

    private static bool Request(string line, out WitnessRequest request) => WitnessLine.TryParseRequest(Encoding.ASCII.GetBytes(line), out request, out _);

    private static bool Answer(string line, out WitnessAnswer answer) => WitnessLine.TryParseAnswer(Encoding.ASCII.GetBytes(line), out answer, out _);

    [TestCase("ACQUIRE 1", 1UL)]
    [TestCase("ACQUIRE 18446744073709551615", ulong.MaxValue)]
    [TestCase("ACQUIRE 7\n", 7UL)]
    public void Acquire_lines_parse(string line, ulong epoch)
    {
        Assert.That(Request(line, out WitnessRequest request), Is.True);
        Assert.That(request, Is.EqualTo(new WitnessRequest(WitnessVerb.Acquire, epoch)));
    }

    [TestCase("")]
    [TestCase("\n")]
    [TestCase("ACQUIRE")]
    [TestCase("ACQUIRE 0")]
    [TestCase("ACQUIRE 01")]
    [TestCase("ACQUIRE +1")]
    [TestCase("ACQUIRE -1")]
    [TestCase("ACQUIRE 18446744073709551616")]
    [TestCase("ACQUIRE 1 ")]
    [TestCase(" ACQUIRE 1")]
    [TestCase("ACQUIRE  1")]
    [TestCase("ACQUIRE\t1")]
    [TestCase("ACQUIRE 1\r")]
    [TestCase("ACQUIRE 1\n\n")]
    [TestCase("ACQUIRE a 1")]
    [TestCase("ACQUIRE x 18446744073709551615")]
    [TestCase("acquire 1")]
    [TestCase("RELEASE a")]
    [TestCase("RELEASE ")]
    [TestCase("HELLO")]
    [TestCase("ACQUIRE 1000000000000000000000000000000")]
    public void Anything_else_is_refused_with_a_reason(string line)
    {
        Assert.That(WitnessLine.TryParseRequest(Encoding.ASCII.GetBytes(line), out _, out string error), Is.False);
        Assert.That(error, Is.Not.Empty);
    }

    [Test]
    public void Non_ascii_and_overlong_lines_are_refused()
    {
        Assert.That(WitnessLine.TryParseRequest("ACQUIRE 1\u00e9"u8.ToArray(), out _, out string nonAscii), Is.False);
        Assert.That(nonAscii, Does.Contain("printable ASCII"));
        Assert.That(WitnessLine.TryParseRequest([.. "ACQUIRE 1"u8, 0], out _, out _), Is.False, "a NUL");
        byte[] overlong = Encoding.ASCII.GetBytes("RELEASE" + new string(' ', WitnessLine.MaxRequestBytes));
        Assert.That(WitnessLine.TryParseRequest(overlong, out _, out string tooLong), Is.False);
        Assert.That(tooLong, Does.Contain("longer"));
    }

    [Test]
    public void Every_answer_round_trips()
    {
        WitnessAnswer[] answers =
        [
            new WitnessAnswer.Granted(1000),
            new WitnessAnswer.Denied("node-a", 7, WitnessRefusal.Held),
            new WitnessAnswer.Denied(null, ulong.MaxValue, WitnessRefusal.Fenced),
            new WitnessAnswer.Denied(null, 3, WitnessRefusal.EpochTooHigh),
            new WitnessAnswer.Denied("b", 0, WitnessRefusal.UnknownNode),
            new WitnessAnswer.Denied("b", 2, WitnessRefusal.Unwritable),
            new WitnessAnswer.Released(),
            new WitnessAnswer.NotHolder("a.b_c-d"),
            new WitnessAnswer.NotHolder(null),
        ];
        foreach (WitnessAnswer answer in answers)
        {
            byte[] line = WitnessLine.Format(answer);
            Assert.That(line, Has.Length.LessThanOrEqualTo(WitnessLine.MaxAnswerBytes));
            Assert.That(WitnessLine.TryParseAnswer(line, out WitnessAnswer back, out string error), Is.True, error);
            Assert.That(back, Is.EqualTo(answer));
        }
        foreach (WitnessRequest request in new[] { new WitnessRequest(WitnessVerb.Acquire, 1), new WitnessRequest(WitnessVerb.Acquire, ulong.MaxValue), new WitnessRequest(WitnessVerb.Release, 0) })
        {
            Assert.That(WitnessLine.TryParseRequest(WitnessLine.Format(request), out WitnessRequest back, out _), Is.True);
            Assert.That(back, Is.EqualTo(request));
        }
    }

    [TestCase("GRANTED 0")]
    [TestCase("GRANTED 3600001")]
    [TestCase("GRANTED")]
    [TestCase("DENIED a 1 held extra")]
    [TestCase("DENIED a 1 maybe")]
    [TestCase("DENIED a! 1 held")]
    [TestCase("DENIED a 1")]
    [TestCase("NOT-HOLDER")]
    [TestCase("RELEASED now")]
    [TestCase("DENIED-fenced")]
    public void Malformed_answers_are_refused(string line) => Assert.That(Answer(line, out _), Is.False);

    [Test]
    public void Fuzz_random_bytes_never_throw_and_only_exact_forms_pass()
    {
        Gen.Byte.Array[0, 80].Sample(bytes =>
        {
            bool isRequest = WitnessLine.TryParseRequest(bytes, out WitnessRequest request, out string requestError);
            bool isAnswer = WitnessLine.TryParseAnswer(bytes, out WitnessAnswer answer, out string answerError);
            // Whatever passed is the canonical form of what it parsed to (one trailing newline aside).
            ReadOnlySpan<byte> line = bytes.Length > 0 && bytes[^1] == '\n' ? bytes.AsSpan(0, bytes.Length - 1) : bytes;
            return (isRequest ? line.SequenceEqual(WitnessLine.Format(request)) : requestError.Length > 0)
                && (isAnswer ? line.SequenceEqual(WitnessLine.Format(answer)) : answerError.Length > 0);
        }, seed: Seed, iter: 20_000);
    }

    [Test]
    public void Fuzz_mutated_valid_lines_are_either_refused_or_exactly_canonical()
    {
        Gen<byte[]> valid = Gen.OneOf(
            Gen.ULong[1, ulong.MaxValue].Select(e => WitnessLine.Format(new WitnessRequest(WitnessVerb.Acquire, e))),
            Gen.Const(WitnessLine.Format(new WitnessRequest(WitnessVerb.Release, 0))),
            Gen.Int[1, 60_000].Select(ms => WitnessLine.Format(new WitnessAnswer.Granted(ms))),
            Gen.ULong.Select(e => WitnessLine.Format(new WitnessAnswer.Denied("node-a", e, WitnessRefusal.Held))));
        // Flip, insert or delete one to three bytes.
        Gen<byte[]> mutated = Gen.Select(valid, Gen.Int[1, 3], Gen.Int, Gen.Byte, (line, times, where, value) =>
        {
            var bytes = new List<byte>(line);
            for (int i = 0; i < times; i++)
            {
                int at = (int)((uint)(where + (i * 7919)) % (uint)(bytes.Count + 1));
                switch ((where >> (8 + i)) & 3)
                {
                    case 0 when at < bytes.Count: bytes[at] ^= (byte)(value | 1); break;
                    case 1: bytes.Insert(at, value); break;
                    case 2 when at < bytes.Count: bytes.RemoveAt(at); break;
                    default: bytes.Insert(at, (byte)' '); break;
                }
            }
            return bytes.ToArray();
        });
        mutated.Sample(bytes =>
        {
            ReadOnlySpan<byte> line = bytes.Length > 0 && bytes[^1] == '\n' ? bytes.AsSpan(0, bytes.Length - 1) : bytes;
            bool request = WitnessLine.TryParseRequest(bytes, out WitnessRequest r, out string re);
            bool answer = WitnessLine.TryParseAnswer(bytes, out WitnessAnswer a, out string ae);
            return (request ? line.SequenceEqual(WitnessLine.Format(r)) && r.Epoch != 0 == (r.Verb == WitnessVerb.Acquire) : re.Length > 0)
                && (answer ? line.SequenceEqual(WitnessLine.Format(a)) : ae.Length > 0);
        }, seed: Seed, iter: 20_000);
    }
}
