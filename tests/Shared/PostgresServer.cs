using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Engine.Tests.Shared;

/// <summary>
/// A real PostgreSQL server for a test: a cluster made with <c>initdb</c> in a temporary directory,
/// as the <c>postgres</c> user when the tests run as root (PostgreSQL refuses to run as root),
/// started on a free loopback port, and stopped and removed by <see cref="Dispose"/>, even when the
/// test failed. <see cref="TryStart"/> says why not when PostgreSQL is not installed here (`.ci/run`
/// installs Debian's `postgresql` when it can).
/// </summary>
internal sealed class PostgresServer : IDisposable
{
    private readonly string _bin;
    private readonly string _directory;
    private readonly bool _asPostgres;

    private PostgresServer(string bin, string directory, bool asPostgres, int port)
    {
        _bin = bin;
        _directory = directory;
        _asPostgres = asPostgres;
        Port = port;
    }

    public int Port { get; }

    /// <summary>A connection string for database <paramref name="database"/> as the superuser.</summary>
    public string ConnectionString(string database = "postgres") => $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Pooling=false;Timeout=30";

    public static PostgresServer? TryStart(out string? why)
    {
        string? bin = FindBin();
        if (bin is null)
        {
            why = "PostgreSQL is not installed here (no initdb and pg_ctl under /usr/lib/postgresql/*/bin or on PATH); `.ci/run` installs Debian's postgresql";
            return null;
        }
        bool root = Environment.UserName == "root";
        string directory = Path.Combine(Path.GetTempPath(), $"pg-test-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        var server = new PostgresServer(bin, directory, root, FreePort());
        try
        {
            if (root && Run("chown", ["-R", "postgres:postgres", directory]) is { } chown)
            {
                throw new InvalidOperationException($"chown: {chown}");
            }
            if (server.RunPostgres("initdb", ["-D", Path.Combine(directory, "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]) is { } initdb)
            {
                throw new InvalidOperationException($"initdb: {initdb}");
            }
            string options = $"-p {server.Port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off";
            if (server.RunPostgres("pg_ctl", ["-D", Path.Combine(directory, "data"), "-o", options, "-l", Path.Combine(directory, "server.log"), "-w", "-t", "60", "start"]) is { } start)
            {
                throw new InvalidOperationException($"pg_ctl start: {start}");
            }
            why = null;
            return server;
        }
        catch (Exception e)
        {
            server.Dispose();
            why = $"PostgreSQL could not be started here: {e.Message}";
            return null;
        }
    }

    /// <summary>Creates a database and returns its connection string.</summary>
    public string CreateDatabase(string name)
    {
        using var connection = new NpgsqlConnection(ConnectionString());
        connection.Open();
        using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        create.ExecuteNonQuery();
        return ConnectionString(name);
    }

    public void Dispose()
    {
        NpgsqlConnection.ClearAllPools();
        if (File.Exists(Path.Combine(_directory, "data", "postmaster.pid")))
        {
            RunPostgres("pg_ctl", ["-D", Path.Combine(_directory, "data"), "-m", "immediate", "-w", "-t", "30", "stop"]);
        }
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A file the stopping server still held: the temporary directory is left for the OS.
        }
    }

    private string? RunPostgres(string tool, string[] arguments) =>
        _asPostgres ? Run("runuser", ["-u", "postgres", "--", Path.Combine(_bin, tool), .. arguments]) : Run(Path.Combine(_bin, tool), arguments);

    /// <summary>Runs a command to its end (two minutes at most); null on success, else what it said.</summary>
    private static string? Run(string file, string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using Process process = Process.Start(start)!;
        Task<string> output = process.StandardOutput.ReadToEndAsync();
        Task<string> error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000))
        {
            process.Kill(entireProcessTree: true);
            return $"{file} did not finish in two minutes";
        }
        return process.ExitCode == 0 ? null : $"exit {process.ExitCode}: {error.Result}{output.Result}".Trim();
    }

    private static string? FindBin()
    {
        if (Directory.Exists("/usr/lib/postgresql"))
        {
            foreach (string version in Directory.GetDirectories("/usr/lib/postgresql").OrderDescending())
            {
                string bin = Path.Combine(version, "bin");
                if (File.Exists(Path.Combine(bin, "initdb")) && File.Exists(Path.Combine(bin, "pg_ctl")))
                {
                    return bin;
                }
            }
        }
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            if (File.Exists(Path.Combine(dir, "initdb")) && File.Exists(Path.Combine(dir, "pg_ctl")))
            {
                return dir;
            }
        }
        return null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
