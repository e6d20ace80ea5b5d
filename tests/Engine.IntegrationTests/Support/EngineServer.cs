using Engine.Cli;
using Engine.Client;

namespace Engine.IntegrationTests.Support;

/// <summary>
/// A real <c>engine serve</c> process on free loopback ports, with its data directory; started
/// and waited for until it accepts connections, killed (and its directory removed) on dispose.
/// </summary>
public sealed class EngineServer : IDisposable
{
    private readonly bool _ownsData;
    private readonly string[] _extraArgs;
    private readonly Dictionary<string, string> _environment;
    private EngineProcess? _process;

    public EngineServer(string? data = null, IReadOnlyDictionary<string, string>? environment = null, params string[] extraArgs)
    {
        _ownsData = data is null;
        Data = data ?? Path.Combine(Path.GetTempPath(), $"engine-{Guid.NewGuid():N}");
        _environment = new Dictionary<string, string>(environment ?? new Dictionary<string, string>());
        _extraArgs = extraArgs;
        Port = Ports.Free();
        AdminPort = Ports.Free();
        Start();
    }

    /// <summary>
    /// The LSNs a new ledger of the built-in development configuration spends before any order: its
    /// reference data, journaled as admin transactions by the first node that serves it.
    /// </summary>
    public static ulong InitialLsns { get; } = (ulong)Engine.Core.Book.ReferenceData.Development().AdminTransactions().Count();

    public string Data { get; }

    public int Port { get; }

    public int AdminPort { get; }

    public string Endpoint => $"127.0.0.1:{Port}";

    public string JournalDirectory => Path.Combine(Data, "journal");

    public EngineProcess Process => _process!;

    /// <summary>Starts (or restarts) the process on the same ports and data, and waits until it accepts connections.</summary>
    public void Start()
    {
        _process?.Dispose();
        _process = EngineProcess.Start(_environment, ["serve", "--data", Data, "--listen", Endpoint, "--admin", $"127.0.0.1:{AdminPort}", .. _extraArgs]);
        _process.WaitForLog(o => o.Contains("listening for front-ends", StringComparison.Ordinal), "the engine to start", TimeSpan.FromSeconds(60));
    }

    public Task<EngineClient> ConnectAsync(uint clientId = 1, string? token = null) =>
        EngineClient.ConnectAsync(new ClientOptions { Endpoints = [Endpoint], ClientId = clientId, Token = token ?? $"dev-token-{clientId}", ReconnectFor = TimeSpan.FromSeconds(5) });

    /// <summary>GET /status (with the state checksum unless <paramref name="state"/> is false).</summary>
    internal Task<NodeStatusReport> StatusAsync(bool state = true) => AdminStatus.GetAsync($"127.0.0.1:{AdminPort}", state);

    public void KillHard() => _process?.KillHard();


    public void Dispose()
    {
        _process?.Dispose();
        if (_ownsData && Directory.Exists(Data))
        {
            Directory.Delete(Data, recursive: true);
        }
    }
}
