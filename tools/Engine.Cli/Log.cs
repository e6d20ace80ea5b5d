using Microsoft.Extensions.Logging;

namespace Engine.Cli;

/// <summary>The engine's log events (source-generated: no boxing, no work when the level is off).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "{Message}")]
    public static partial void Info(ILogger logger, string message);

    [LoggerMessage(EventId = 2, Level = LogLevel.Critical, Message = "{Message}")]
    public static partial void Critical(ILogger logger, string message);
}
