using Engine.Cli;

namespace Engine.IntegrationTests.Support;

/// <summary>A node's <c>GET /status</c>, read as the endpoint writes it and the drill reads it: <see cref="NodeStatusReport"/>.</summary>
internal static class AdminStatus
{
    /// <summary>GET /status of the node whose admin endpoint is <paramref name="admin"/> (HOST:PORT), with the state checksum unless <paramref name="state"/> is false.</summary>
    public static async Task<NodeStatusReport> GetAsync(string admin, bool state = true)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        return await NodeStatusReport.GetAsync(http, admin, state, CancellationToken.None).ConfigureAwait(false);
    }
}
