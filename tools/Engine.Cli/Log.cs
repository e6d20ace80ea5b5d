using Microsoft.Extensions.Logging;

namespace Engine.Cli;

/// <summary>The engine's log events (source-generated: no boxing, no work when the level is off).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "{Message}")]
    public static partial void Info(ILogger logger, string message);

    [LoggerMessage(EventId = 2, Level = LogLevel.Critical, Message = "{Message}")]
    public static partial void Critical(ILogger logger, string message);

    // A pair event's epoch and block are left out of its text on purpose (SYSLIB1015: a parameter the
    // message does not name): people read the text, and a program reads them, like the kind, as
    // fields of their own (State.epoch and State.block in a JSON log, as in GET /log).
#pragma warning disable SYSLIB1015

    /// <summary>A pair event: the kind is a field of its own (in JSON logs too), so a reader filters on it, not on the text; so are its epoch and block.</summary>
    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "{Message} [{Kind}]")]
    public static partial void Pair(ILogger logger, string message, string kind, ulong epoch, ulong block);

    /// <summary>A pair event an operator must act on (a halt, a state mismatch, a failed journal).</summary>
    [LoggerMessage(EventId = 4, Level = LogLevel.Critical, Message = "{Message} [{Kind}]")]
    public static partial void PairAlarm(ILogger logger, string message, string kind, ulong epoch, ulong block);

#pragma warning restore SYSLIB1015
}
