using System.Text.Json;
using Engine.Replication;

namespace Engine.Cli;

/// <summary>
/// One answer of <c>GET /log?after=N</c>: the node's pair events after sequence number N, oldest first,
/// and the number to ask after next time. Written by the admin endpoint, read by <c>engine drill</c>,
/// the demo and the tests: one record for both sides (snake_case on the wire: pid, next, lines with
/// seq, at_ms, kind, epoch, block, text).
/// </summary>
/// <param name="Pid">The node's process id (a reader following one process ignores another's answers).</param>
/// <param name="Next">The sequence number of the last line here (or the one asked after, if none).</param>
/// <param name="Lines">The events.</param>
internal sealed record PairLogPage(int Pid, long Next, IReadOnlyList<PairLogLine> Lines)
{
    public byte[] ToJsonUtf8() => JsonSerializer.SerializeToUtf8Bytes(this, AdminEndpoint.Json);

    /// <exception cref="JsonException">Not a page.</exception>
    public static PairLogPage Parse(ReadOnlySpan<byte> json) => JsonSerializer.Deserialize<PairLogPage>(json, AdminEndpoint.Json) ?? throw new JsonException("null");
}

/// <summary>One pair event in <see cref="PairLogPage"/>: its number, UTC time (ms since the epoch), kind (<see cref="PairEvent.Name"/>), epoch, block and text.</summary>
internal sealed record PairLogLine(long Seq, long AtMs, string Kind, ulong Epoch, ulong Block, string Text)
{
    /// <summary>The event (a kind this reader does not know becomes a note: text only).</summary>
    public PairEvent ToEvent() => new(PairEvent.TryParse(Kind, out PairEventKind kind) ? kind : PairEventKind.Note, Text, Epoch, Block);
}
