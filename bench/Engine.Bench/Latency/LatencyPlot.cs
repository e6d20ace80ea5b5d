using System.Globalization;
using System.Text;
using Engine.Cli.Load;

namespace Engine.Bench.Latency;

/// <summary>
/// The latency benchmark's plot: an SVG with one panel per cell (a row per setup, a column per
/// rate), latency over send time on a log scale shared by all panels, the maximum and the mean of
/// every 10 ms bucket. A lone spike in all setups is the load generator's own pause; a spike in one
/// setup only is that setup's (a GC, a snapshot, a commit); a comb is a timer; a ramp is a queue.
/// </summary>
internal static class LatencyPlot
{
    private const int PanelWidth = 380;
    private const int PanelHeight = 220;
    private const int Left = 64;
    private const int Top = 34;
    private const int Gap = 22;
    private const int PlotWidth = PanelWidth - Left - 10;
    private const int PlotHeight = PanelHeight - Top - 28;

    public static string Render(IReadOnlyList<LatencyHarness.Cell> cells, double seconds)
    {
        string[] setups = [.. cells.Select(c => c.Setup).Distinct()];
        double[] rates = [.. cells.Select(c => c.Rate).Distinct()];
        double highest = Math.Max(1_000, cells.Max(c => c.MaxUs));
        int topDecade = (int)Math.Ceiling(Math.Log10(highest));
        const int bottomDecade = 1; // 10 µs
        int width = (rates.Length * (PanelWidth + Gap)) + Gap;
        int height = (setups.Length * (PanelHeight + Gap)) + Gap + 30;
        var svg = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        svg.Append(c, $"""<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">""").Append('\n');
        svg.Append(c, $"""<rect width="{width}" height="{height}" fill="white"/>""").Append('\n');
        svg.Append(c, $"""<text x="{Gap}" y="20" font-size="13">Latency over send time per 10 ms: <tspan fill="#d6561a">max</tspan> and <tspan fill="#2b6fb0">mean</tspan> (open loop, CO-corrected; log scale)</text>""").Append('\n');
        for (int row = 0; row < setups.Length; row++)
        {
            for (int column = 0; column < rates.Length; column++)
            {
                LatencyHarness.Cell? cell = cells.FirstOrDefault(x => x.Setup == setups[row] && x.Rate == rates[column]);
                if (cell is null)
                {
                    continue;
                }
                double x0 = Gap + (column * (PanelWidth + Gap));
                double y0 = 30 + Gap + (row * (PanelHeight + Gap));
                Panel(svg, cell, x0, y0, seconds, bottomDecade, topDecade);
            }
        }
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    private static void Panel(StringBuilder svg, LatencyHarness.Cell cell, double x0, double y0, double seconds, int bottomDecade, int topDecade)
    {
        var c = CultureInfo.InvariantCulture;
        double px = x0 + Left, py = y0 + Top;
        svg.Append(c, $"""<text x="{x0 + 4}" y="{y0 + 14}" font-size="12" font-weight="bold">{cell.Setup} · {cell.Rate:N0}/s</text>""");
        svg.Append(c, $"""<text x="{x0 + 4}" y="{y0 + 28}">p50 {cell.Us(50):F0} µs · p99 {cell.Us(99):F0} µs · p99.9 {cell.Us(99.9):F0} µs · max {cell.MaxUs:F0} µs</text>""").Append('\n');
        svg.Append(c, $"""<rect x="{px}" y="{py}" width="{PlotWidth}" height="{PlotHeight}" fill="#fafafa" stroke="#999"/>""").Append('\n');
        for (int decade = bottomDecade; decade <= topDecade; decade++)
        {
            double y = Y(Math.Pow(10, decade), py, bottomDecade, topDecade);
            svg.Append(c, $"""<line x1="{px}" y1="{y:F1}" x2="{px + PlotWidth}" y2="{y:F1}" stroke="#ddd"/>""");
            svg.Append(c, $"""<text x="{px - 4}" y="{y + 4:F1}" text-anchor="end">{Label(decade)}</text>""").Append('\n');
        }
        int step = seconds > 20 ? 5 : seconds > 8 ? 2 : 1;
        for (int s = 0; s <= seconds; s += step)
        {
            double x = px + (s / seconds * PlotWidth);
            svg.Append(c, $"""<text x="{x:F1}" y="{py + PlotHeight + 14}" text-anchor="middle">{s} s</text>""");
        }
        svg.Append('\n');
        LatencyTimeline t = cell.Timeline;
        int buckets = Math.Min(t.Buckets, (int)Math.Ceiling(seconds / t.Bucket.TotalSeconds));
        Line(svg, t, buckets, seconds, px, py, bottomDecade, topDecade, max: true, "#d6561a");
        Line(svg, t, buckets, seconds, px, py, bottomDecade, topDecade, max: false, "#2b6fb0");
    }

    private static void Line(StringBuilder svg, LatencyTimeline t, int buckets, double seconds, double px, double py, int bottomDecade, int topDecade, bool max, string colour)
    {
        var c = CultureInfo.InvariantCulture;
        svg.Append(c, $"""<polyline fill="none" stroke="{colour}" stroke-width="1" points=" """);
        for (int i = 0; i < buckets; i++)
        {
            if (t.CountAt(i) == 0)
            {
                continue;
            }
            double us = max ? t.MaxUsAt(i) : t.MeanUsAt(i);
            double x = px + ((i + 0.5) * t.Bucket.TotalSeconds / seconds * PlotWidth);
            svg.Append(c, $"{x:F1},{Y(us, py, bottomDecade, topDecade):F1} ");
        }
        svg.Append("\"/>\n");
    }

    private static double Y(double us, double py, int bottomDecade, int topDecade)
    {
        double l = Math.Clamp(Math.Log10(Math.Max(us, 1)), bottomDecade, topDecade);
        return py + PlotHeight - ((l - bottomDecade) / (topDecade - bottomDecade) * PlotHeight);
    }

    private static string Label(int decade) => decade switch
    {
        < 3 => $"{Math.Pow(10, decade):F0} µs",
        < 6 => $"{Math.Pow(10, decade - 3):F0} ms",
        _ => $"{Math.Pow(10, decade - 6):F0} s",
    };
}
