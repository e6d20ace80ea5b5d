using System.Globalization;
using System.Text;
using Engine.Cli.Load;

namespace Engine.Cli.Drill;

/// <summary>What one round of a drill measured.</summary>
internal sealed class RoundResult(string scenario, int seed)
{
    public string Scenario { get; } = scenario;

    public int Seed { get; } = seed;

    public string Detail { get; set; } = "";

    /// <summary>What changed before the fault with no fault injected (the pair's own takeover, e.g. a primary starved of the CPU): reported, not a failure.</summary>
    public string? Unplanned { get; set; }

    public bool Whole { get; set; }

    /// <summary>The fault did not have the effect it must have (a killed primary not replaced).</summary>
    public bool Failure { get; set; }

    public long Acked { get; set; }

    public long Rejected { get; set; }

    public IReadOnlyDictionary<string, long> RejectedByReason { get; set; } = new Dictionary<string, long>();

    /// <summary>Requests never answered (the load's drain ran out): not lost, since never acknowledged, but reported.</summary>
    public long Unanswered { get; set; }

    public long Lost { get; set; }

    public long Duplicates { get; set; }

    public long SplitBrain { get; set; }

    public bool JournalsIntact { get; set; }

    public bool JournalsAgree { get; set; }

    public bool StateMismatch { get; set; }

    public double? DetectionMs { get; set; }

    public double? TakeoverMs { get; set; }

    public double GapMs { get; set; }

    /// <summary>When the fault struck (UTC, as the nodes' logs stamp their lines).</summary>
    public DateTime? FaultAt { get; set; }

    /// <summary>When the longest gap began, in ms from the fault (negative: before it); null with fewer than two receipts.</summary>
    public double? GapFromMs { get; set; }

    /// <summary>Nothing lost, doubled or split, every request answered, both journals whole and agreeing, and the pair whole again.</summary>
    public bool Ok => !Failure && Whole && Lost == 0 && Duplicates == 0 && SplitBrain == 0 && Unanswered == 0 && JournalsIntact && JournalsAgree && !StateMismatch;

    public string Line(int number, int of) => string.Create(CultureInfo.InvariantCulture,
        $"round {number}/{of} {Scenario,-13} seed {Seed}{(FaultAt is { } at ? $" at {at:HH:mm:ss.fff}" : "")}: {(Unplanned is null ? "" : $"NOTE {Unplanned}; ")}{Detail}; detected {Ms(DetectionMs)}, takeover {Ms(TakeoverMs)}, longest gap {GapMs:F0} ms{(GapFromMs is { } gapFrom ? $" (from {(gapFrom < 0 ? "" : "+")}{gapFrom:F0} ms)" : "")}; " +
        $"acked {Acked:N0}, rejected {Rejected:N0} ({string.Join(", ", RejectedByReason.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value:N0}"))}), lost {Lost}, duplicates {Duplicates}, split {SplitBrain}{(Unanswered > 0 ? $", unanswered {Unanswered:N0}" : "")}; " +
        $"{(Whole ? $"pair whole, journals {(JournalsIntact ? "intact" : "BROKEN")} and {(JournalsAgree ? "agreeing" : "NOT AGREEING")}" : "PAIR NOT WHOLE (journals not checked)")}" +
        $"{(StateMismatch ? ", STATE MISMATCH" : "")} {(Ok ? "ok" : "FAILED")}");

    private static string Ms(double? ms) => ms is { } v ? string.Create(CultureInfo.InvariantCulture, $"{v:F0} ms") : "-";
}

/// <summary>All rounds of a drill, summed up per scenario.</summary>
internal sealed class DrillReport(DrillOptions options)
{
    private readonly List<RoundResult> _rounds = [];

    public void Add(RoundResult round) => _rounds.Add(round);

    /// <summary>Every order acknowledged in any round, audited against the final primary's journal at the end.</summary>
    public AuditResult Final { get; set; } = AuditResult.Unknown("not checked");

    public bool Ok => _rounds.Count == options.Rounds && _rounds.All(r => r.Ok) && Final.Clean;

    public string Table()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"\ndrill summary (seed {options.Seed}, {options.Rate:N0} orders/s, faults of {options.FaultMs} ms)");
        text.AppendLine("  scenario       rounds  failed  lost  dup  split  detect p50   takeover p50/p99/max   gap p50/p99/max ms   acked");
        foreach (IGrouping<string, RoundResult> g in _rounds.GroupBy(r => r.Scenario).Append(Everything()))
        {
            Summary s = Summarize(g);
            text.AppendLine(CultureInfo.InvariantCulture,
                $"  {g.Key,-13} {s.Rounds,7} {s.Failed,7} {s.Lost,5} {s.Duplicates,4} {s.Split,6} {Num(s.DetectP50),11}   {Num(s.TakeoverP50),6}/{Num(s.TakeoverP99)}/{Num(s.TakeoverMax),-8} {s.GapP50,6:F0}/{s.GapP99:F0}/{s.GapMax,-8:F0} {s.Acked,9:N0}");
        }
        text.AppendLine(CultureInfo.InvariantCulture, $"  every order acknowledged in any round, checked against the final primary's journal: {Final.Lost} missing, {Final.Duplicates} doubled, {Final.Split} split");
        int unplanned = _rounds.Count(r => r.Unplanned is not null);
        if (unplanned > 0)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"  takeovers nobody injected (found at the start of a round; see the NOTE lines): {unplanned}");
        }
        text.Append(Ok ? "OK: nothing acknowledged was lost, doubled or split, and the pair came back whole after every fault." : "FAILED");
        return text.ToString();
    }

    public Dictionary<string, object?> ToJson()
    {
        Summary all = Summarize(Everything());
        Dictionary<string, object?> json = all.ToJson();
        json["seed"] = options.Seed;
        json["final_lost"] = Final.Lost;
        json["final_duplicates"] = Final.Duplicates;
        json["final_split"] = Final.Split;
        json["unplanned_takeovers"] = _rounds.Count(r => r.Unplanned is not null);
        json["ok"] = Ok;
        json["scenarios"] = _rounds.GroupBy(r => r.Scenario).ToDictionary(g => g.Key, g => Summarize(g).ToJson());
        return json;
    }

    private IGrouping<string, RoundResult> Everything() => _rounds.GroupBy(_ => "all").FirstOrDefault() ?? Array.Empty<RoundResult>().GroupBy(_ => "all").First();

    private static Summary Summarize(IEnumerable<RoundResult> rounds)
    {
        List<RoundResult> list = [.. rounds];
        double[] takeovers = [.. list.Where(r => r.TakeoverMs is not null).Select(r => r.TakeoverMs!.Value).Order()];
        double[] detections = [.. list.Where(r => r.DetectionMs is not null).Select(r => r.DetectionMs!.Value).Order()];
        double[] gaps = [.. list.Select(r => r.GapMs).Order()];
        return new Summary(list.Count, list.Count(r => !r.Ok), list.Sum(r => r.Lost), list.Sum(r => r.Duplicates), list.Sum(r => r.SplitBrain),
            list.Sum(r => r.Acked), list.Sum(r => r.Unanswered), Percentile(detections, 50), Percentile(takeovers, 50), Percentile(takeovers, 99), takeovers.Length == 0 ? null : takeovers[^1],
            Percentile(gaps, 50) ?? 0, Percentile(gaps, 99) ?? 0, gaps.Length == 0 ? 0 : gaps[^1]);
    }

    /// <summary>Nearest rank on sorted values; null when there are none.</summary>
    private static double? Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? null : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];

    private static string Num(double? v) => v is { } x ? x.ToString("F0", CultureInfo.InvariantCulture) : "-";

    private sealed record Summary(int Rounds, int Failed, long Lost, long Duplicates, long Split, long Acked, long Unanswered, double? DetectP50,
        double? TakeoverP50, double? TakeoverP99, double? TakeoverMax, double GapP50, double GapP99, double GapMax)
    {
        public Dictionary<string, object?> ToJson() => new()
        {
            ["rounds"] = Rounds,
            ["failed_rounds"] = Failed,
            ["lost"] = Lost,
            ["duplicates"] = Duplicates,
            ["split_brain"] = Split,
            ["acked"] = Acked,
            ["unanswered"] = Unanswered,
            ["detection_ms_p50"] = Round(DetectP50),
            ["takeover_ms_p50"] = Round(TakeoverP50),
            ["takeover_ms_p99"] = Round(TakeoverP99),
            ["takeover_ms_max"] = Round(TakeoverMax),
            ["gap_ms_p50"] = Round(GapP50),
            ["gap_ms_p99"] = Round(GapP99),
            ["gap_ms_max"] = Round(GapMax),
        };

        private static double? Round(double? v) => v is { } x ? Math.Round(x, 1) : null;
    }
}
