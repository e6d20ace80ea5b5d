using Microsoft.Extensions.Logging;

namespace Engine.Cli;

/// <summary>The engine's log events (source-generated: no boxing, no work when the level is off).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "{Message}")]
    public static partial void Info(ILogger logger, string message);

    [LoggerMessage(EventId = 2, Level = LogLevel.Critical, Message = "{Message}")]
    public static partial void Critical(ILogger logger, string message);

    /// <summary>A pair event: the kind is a field of its own (in JSON logs too), so a reader filters on it, not on the text.</summary>
    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "{Message} [{Kind}]")]
    public static partial void Pair(ILogger logger, string message, string kind);

    /// <summary>A pair event an operator must act on (a halt, a state mismatch, a failed journal).</summary>
    [LoggerMessage(EventId = 4, Level = LogLevel.Critical, Message = "{Message} [{Kind}]")]
    public static partial void PairAlarm(ILogger logger, string message, string kind);
}
