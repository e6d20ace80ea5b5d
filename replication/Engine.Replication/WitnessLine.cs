using System.Globalization;
using System.Text;
using Engine.Security;

namespace Engine.Replication;

/// <summary>What a node asks the witness: the lease for an epoch, or to give it back. Who asks is the channel's authenticated peer, never a field.</summary>
public readonly record struct WitnessRequest(WitnessVerb Verb, ulong Epoch);

/// <summary>The requests the witness knows.</summary>
public enum WitnessVerb
{
    /// <summary><c>ACQUIRE epoch</c>: grant (or renew) the solo lease in that epoch.</summary>
    Acquire = 1,

    /// <summary><c>RELEASE</c>: a backup is in step with the holder again; give the lease back.</summary>
    Release = 2,

    /// <summary>
    /// <c>RESUME epoch</c>: as ACQUIRE, but granted only to the node that holds the lease already (a
    /// holder restarted as a backup, with nobody to follow): the holder has every block ever
    /// acknowledged, so it may serve again; any other node is refused, whoever holds it.
    /// </summary>
    Resume = 3,
}

/// <summary>
/// The witness protocol's lines, one request and one answer per secure-channel message, parsed
/// strictly: printable ASCII only, single spaces, no field more or less, numbers in canonical
/// decimal (no sign, no leading zero), names as the roster spells them, and nothing longer than
/// <see cref="MaxRequestBytes"/> / <see cref="MaxAnswerBytes"/>. Anything else is refused with a
/// reason (the witness then closes that connection), never half-understood.
/// </summary>
/// <remarks>
/// <code>
/// node → witness   ACQUIRE &lt;epoch&gt;          epoch 1 … 2^64-1
///                  RESUME &lt;epoch&gt;           the same, for the holder only
///                  RELEASE
/// witness → node   GRANTED &lt;ms&gt;              ms 1 … 3600000
///                  DENIED &lt;holder|-&gt; &lt;epoch&gt; &lt;held|fenced|epoch-too-high|unknown-node|unwritable|not-holder&gt;
///                  RELEASED
///                  NOT-HOLDER &lt;holder|-&gt;
/// </code>
/// A line carries no newline (the channel frames messages); one trailing <c>\n</c> is tolerated.
/// </remarks>
public static class WitnessLine
{
    /// <summary>The longest request: <c>ACQUIRE</c>, a space and 20 digits, with room to spare.</summary>
    public const int MaxRequestBytes = 32;

    /// <summary>The longest answer: <c>DENIED</c>, a name of <see cref="MaxNameBytes"/>, 20 digits and the longest reason.</summary>
    public const int MaxAnswerBytes = 128;

    /// <summary>The longest principal name the witness protocol carries.</summary>
    public const int MaxNameBytes = Principal.MaxNameLength;

    /// <summary>The longest lease a witness grants (an hour): <c>engine witness --lease-ms</c> is far below.</summary>
    public const int MaxLeaseMs = 3_600_000;

    public static byte[] Format(WitnessRequest request) => Encoding.ASCII.GetBytes(request.Verb switch
    {
        WitnessVerb.Acquire => string.Create(CultureInfo.InvariantCulture, $"ACQUIRE {request.Epoch}"),
        WitnessVerb.Release => "RELEASE",
        WitnessVerb.Resume => string.Create(CultureInfo.InvariantCulture, $"RESUME {request.Epoch}"),
        _ => throw new ArgumentOutOfRangeException(nameof(request), request.Verb, "no such verb"),
    });

    public static byte[] Format(WitnessAnswer answer) => Encoding.ASCII.GetBytes(answer switch
    {
        WitnessAnswer.Granted g => string.Create(CultureInfo.InvariantCulture, $"GRANTED {g.LeaseMs}"),
        WitnessAnswer.Denied d => string.Create(CultureInfo.InvariantCulture, $"DENIED {d.Holder ?? "-"} {d.Epoch} {Word(d.Reason)}"),
        WitnessAnswer.Released => "RELEASED",
        WitnessAnswer.NotHolder n => $"NOT-HOLDER {n.Holder ?? "-"}",
        _ => throw new ArgumentOutOfRangeException(nameof(answer), answer, "no answer to send"),
    });

    /// <summary>The reason as a word on the wire and in logs.</summary>
    public static string Word(WitnessRefusal reason) => reason switch
    {
        WitnessRefusal.Held => "held",
        WitnessRefusal.Fenced => "fenced",
        WitnessRefusal.EpochTooHigh => "epoch-too-high",
        WitnessRefusal.UnknownNode => "unknown-node",
        WitnessRefusal.Unwritable => "unwritable",
        WitnessRefusal.NotHolder => "not-holder",
        _ => throw new ArgumentOutOfRangeException(nameof(reason), reason, "no such reason"),
    };

    /// <summary>Parses one request; false with the reason when it is not exactly one of the three forms.</summary>
    public static bool TryParseRequest(ReadOnlySpan<byte> line, out WitnessRequest request, out string error)
    {
        request = default;
        if (!TryWords(line, MaxRequestBytes, out string[] words, out error))
        {
            return false;
        }
        switch (words)
        {
            case [string verb and ("ACQUIRE" or "RESUME"), string epoch]:
                if (!TryCanonicalUInt64(epoch, out ulong e) || e == 0)
                {
                    error = "the epoch is not a number from 1 to 2^64-1";
                    return false;
                }
                request = new WitnessRequest(verb == "ACQUIRE" ? WitnessVerb.Acquire : WitnessVerb.Resume, e);
                return true;
            case ["RELEASE"]:
                request = new WitnessRequest(WitnessVerb.Release, 0);
                return true;
            default:
                error = "expected 'ACQUIRE epoch', 'RESUME epoch' or 'RELEASE'";
                return false;
        }
    }

    /// <summary>Parses one answer; false with the reason when it is not exactly one of the four forms.</summary>
    public static bool TryParseAnswer(ReadOnlySpan<byte> line, out WitnessAnswer answer, out string error)
    {
        answer = new WitnessAnswer.NoAnswer("malformed");
        if (!TryWords(line, MaxAnswerBytes, out string[] words, out error))
        {
            return false;
        }
        switch (words)
        {
            case ["GRANTED", string ms] when TryCanonicalUInt64(ms, out ulong m) && m is >= 1 and <= MaxLeaseMs:
                answer = new WitnessAnswer.Granted((int)m);
                return true;
            case ["DENIED", string holder, string epoch, string reason] when TryHolder(holder, out string? h) && TryCanonicalUInt64(epoch, out ulong e) && TryReason(reason, out WitnessRefusal r):
                answer = new WitnessAnswer.Denied(h, e, r);
                return true;
            case ["RELEASED"]:
                answer = new WitnessAnswer.Released();
                return true;
            case ["NOT-HOLDER", string holder] when TryHolder(holder, out string? h):
                answer = new WitnessAnswer.NotHolder(h);
                return true;
            default:
                error = "expected 'GRANTED ms', 'DENIED holder epoch reason', 'RELEASED' or 'NOT-HOLDER holder'";
                return false;
        }
    }

    /// <summary>True for a name the witness protocol carries: a principal's name (<see cref="Principal.IsValidName"/>), but not "-", which means nobody.</summary>
    public static bool IsName(ReadOnlySpan<char> name) => Principal.IsValidName(name) && name is not "-";

    private static bool TryHolder(string word, out string? holder)
    {
        holder = word == "-" ? null : word;
        return word == "-" || IsName(word);
    }

    private static bool TryReason(string word, out WitnessRefusal reason)
    {
        reason = word switch
        {
            "held" => WitnessRefusal.Held,
            "fenced" => WitnessRefusal.Fenced,
            "epoch-too-high" => WitnessRefusal.EpochTooHigh,
            "unknown-node" => WitnessRefusal.UnknownNode,
            "unwritable" => WitnessRefusal.Unwritable,
            "not-holder" => WitnessRefusal.NotHolder,
            _ => 0,
        };
        return reason != 0;
    }

    /// <summary>Splits a line of printable ASCII into words separated by exactly one space, after at most one trailing newline.</summary>
    private static bool TryWords(ReadOnlySpan<byte> line, int max, out string[] words, out string error)
    {
        words = [];
        if (line.Length > 0 && line[^1] == (byte)'\n')
        {
            line = line[..^1];
        }
        if (line.Length == 0)
        {
            error = "empty line";
            return false;
        }
        if (line.Length > max)
        {
            error = string.Create(CultureInfo.InvariantCulture, $"line longer than {max} bytes");
            return false;
        }
        foreach (byte b in line)
        {
            if (b is < 0x20 or > 0x7E)
            {
                error = string.Create(CultureInfo.InvariantCulture, $"byte 0x{b:x2} in the line (printable ASCII only)");
                return false;
            }
        }
        if (line[0] == (byte)' ' || line[^1] == (byte)' ' || line.IndexOf("  "u8) >= 0)
        {
            error = "words must be separated by exactly one space";
            return false;
        }
        words = Encoding.ASCII.GetString(line).Split(' ');
        error = "";
        return true;
    }

    /// <summary>Decimal digits only, no leading zero (but "0"), at most 20 digits, within <see cref="ulong"/>.</summary>
    private static bool TryCanonicalUInt64(string word, out ulong value)
    {
        value = 0;
        if (word.Length is 0 or > 20 || (word.Length > 1 && word[0] == '0'))
        {
            return false;
        }
        foreach (char c in word)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }
        return ulong.TryParse(word, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }
}
