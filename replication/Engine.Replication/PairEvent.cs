using System.Text;

namespace Engine.Replication;

/// <summary>
/// What happened in the pair, by kind: the one source of the node's log lines about the pair, of
/// <c>GET /log</c>, of the drill's detection and of the tests' waits. Programs decide on the kind
/// (and the epoch and block it carries); the text is for people and may change.
/// </summary>
public enum PairEventKind
{
    /// <summary>Anything a person may want to read that nothing decides on (start-up, settings, endpoints).</summary>
    Note,

    /// <summary>This node serves as primary (from the start, before any backup is in step).</summary>
    PrimaryStarted,

    /// <summary>Primary: a backup caught up and is mirrored live; blocks are acknowledged once it holds them.</summary>
    BackupInStep,

    /// <summary>Primary: the backup's link ended (silence, a reset, the backup gone).</summary>
    BackupLost,

    /// <summary>Primary: a joining backup's chain is not on ours: it must discard its journal.</summary>
    BackupDiverged,

    /// <summary>Backup: following the primary from a block (after start, or after a lost link).</summary>
    Following,

    /// <summary>Backup: the primary answered the hello; catching up.</summary>
    CatchingUp,

    /// <summary>Backup: caught up, following live.</summary>
    InStep,

    /// <summary>Backup: the primary has been silent for the silence timeout.</summary>
    PrimarySilent,

    /// <summary>Backup: the primary is gone while this node was in step.</summary>
    PrimaryLost,

    /// <summary>Backup: our chain is not on the primary's: our suffix was never acknowledged, and is discarded.</summary>
    Diverged,

    /// <summary>Something on the link that an honest, healthy peer never sends (a forged ack, a block that does not chain, corrupt bytes): the link is reset.</summary>
    LinkIncident,

    /// <summary>A peer, client or request refused before it was believed (authentication, malformed, too many): aggregated per source.</summary>
    Refused,

    /// <summary>Backup: the state checksum after a block matches the primary's.</summary>
    ChecksumMatched,

    /// <summary>Backup: the same blocks gave different states: the node stops.</summary>
    StateMismatch,

    /// <summary>Backup: the primary is lost, but the witness refuses the lease: still following.</summary>
    TakeoverRefused,

    /// <summary>This node became primary in a new epoch.</summary>
    TakeOver,

    /// <summary>This primary learned of a higher epoch (the other node took over): it becomes a backup.</summary>
    SteppingDown,

    /// <summary>The solo lease is held (the witness's grant, or the operator's go-solo).</summary>
    LeaseGranted,

    /// <summary>The witness refused the solo lease.</summary>
    LeaseRefused,

    /// <summary>A backup is in step again: the solo lease was given back.</summary>
    LeaseReleased,

    /// <summary>Primary cut off from backup and witness: its clients are sent to the other node.</summary>
    ClientsSentAway,

    /// <summary>Primary able to acknowledge again: it takes its clients back.</summary>
    ClientsTakenBack,

    /// <summary>This node's journal failed (an I/O error, a full disk).</summary>
    JournalFailed,

    /// <summary>This node halted: it acknowledges nothing more and never takes over.</summary>
    Halted,
}

/// <summary>One pair event: its kind, what a person reads, and the epoch and block it is about (0 where it is about none).</summary>
public sealed record PairEvent(PairEventKind Kind, string Text, ulong Epoch = 0, ulong BlockNo = 0)
{
    /// <summary>A note: text only, nothing decides on it.</summary>
    public static PairEvent Note(string text) => new(PairEventKind.Note, text);

    /// <summary>The kind's name on the wire and in logs: snake_case (<c>take_over</c>).</summary>
    public static string Name(PairEventKind kind)
    {
        string name = kind.ToString();
        var snake = new StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                snake.Append('_');
            }
            snake.Append(char.ToLowerInvariant(name[i]));
        }
        return snake.ToString();
    }

    /// <summary>The kind named <paramref name="name"/> (as <see cref="Name"/> writes it); false for anything else.</summary>
    public static bool TryParse(string? name, out PairEventKind kind)
    {
        foreach (PairEventKind candidate in Enum.GetValues<PairEventKind>())
        {
            if (string.Equals(Name(candidate), name, StringComparison.Ordinal))
            {
                kind = candidate;
                return true;
            }
        }
        kind = default;
        return false;
    }

    public override string ToString() => $"{Text} [{Name(Kind)}]";
}
