using BenchmarkDotNet.Running;
using Engine.Bench.Book;
using Engine.Bench.Latency;
using Engine.Bench.Ledger;
using Engine.Bench.Ring;

namespace Engine.Bench;

/// <summary>
/// Benchmarks at two levels: harnesses that run whole topologies against a baseline in the same
/// run (<c>ring</c>), and BenchmarkDotNet micro benchmarks with allocations checked (<c>micro</c>).
/// </summary>
public static class Program
{
    private const string Usage = """
        usage: dotnet run -c Release --project bench/Engine.Bench -- <command> [options]

        commands:
        """;

    public static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            PrintUsage();
            return args.Length == 0 ? 2 : 0;
        }
        string[] rest = args[1..];
        switch (args[0])
        {
            case "ring":
                return RingHarness.Run(rest);
            case "pipeline":
                return PipelineHarness.Run(rest);
            case "book":
                return BookHarness.Run(rest);
            case "snapshot":
                return SnapshotHarness.Run(rest);
            case "recovery":
                return RecoveryHarness.Run(rest);
            case "snapshot-pause":
                return SnapshotPauseHarness.Run(rest);
            case "rejoin":
                return RejoinHarness.Run(rest);
            case "latency":
                return LatencyHarness.Run(rest);
            case "floor-server":
                return FloorServer.Run(rest);
            case "proofs":
                return ProofHarness.Run(rest);
            case "micro":
                // BenchmarkDotNet's own arguments, e.g. --filter '*Ring*' --job short.
                BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(rest.Length == 0 ? ["--filter", "*"] : rest);
                return 0;
            default:
                Console.Error.WriteLine($"unknown command '{args[0]}'");
                PrintUsage();
                return 2;
        }
    }

    private static void PrintUsage()
    {
        Console.Error.WriteLine(Usage);
        Console.Error.WriteLine("  " + RingHarness.Usage.Replace("\n", "\n  ", StringComparison.Ordinal));
        Console.Error.WriteLine("  " + PipelineHarness.Usage.Replace("\n", "\n  ", StringComparison.Ordinal));
        Console.Error.WriteLine("  " + BookHarness.Usage.Replace("\n", "\n  ", StringComparison.Ordinal));
        Console.Error.WriteLine("  " + SnapshotHarness.Usage.Replace("\n", "\n  ", StringComparison.Ordinal));
        Console.Error.WriteLine("  " + RecoveryHarness.Usage.Replace("\n", "\n  ", StringComparison.Ordinal));
        Console.Error.WriteLine("  " + SnapshotPauseHarness.Usage.Replace("\n", "\n  ", StringComparison.Ordinal));
        Console.Error.WriteLine("  " + RejoinHarness.Usage.Replace("\n", "\n  ", StringComparison.Ordinal));
        Console.Error.WriteLine("  " + LatencyHarness.Usage.Replace("\n", "\n  ", StringComparison.Ordinal));
        Console.Error.WriteLine("  " + FloorServer.Usage.Replace("\n", "\n  ", StringComparison.Ordinal));
        Console.Error.WriteLine("  " + ProofHarness.Usage.Replace("\n", "\n  ", StringComparison.Ordinal));
        Console.Error.WriteLine("""
              micro [BenchmarkDotNet options]
                BenchmarkDotNet micro benchmarks with the memory diagnoser (default: all; e.g. --filter '*Ring*' or '*Codec*').
            """);
    }
}
