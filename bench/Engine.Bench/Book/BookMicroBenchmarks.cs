using BenchmarkDotNet.Attributes;
using Engine.Core.Book;
using Engine.Protocol;

namespace Engine.Bench.Book;

/// <summary>The order book per command, exchange-core mix, with allocations.</summary>
[MemoryDiagnoser]
public class BookMicroBenchmarks
{
    private const int Commands = 200_000;
    private Transaction[] _warmup = [];
    private Transaction[] _commands = [];
    private Exchange _exchange = null!;
    private ulong _lsn;

    [GlobalSetup]
    public void Setup() => (_warmup, _commands) = ExchangeCoreMix.Generate(Commands);

    [IterationSetup]
    public void Fresh()
    {
        _exchange = new Exchange(ExchangeCoreMix.Reference());
        var sink = new NullSink();
        _lsn = 0;
        foreach (Transaction tx in _warmup)
        {
            _exchange.Apply(in tx, ++_lsn, 1, default, ref sink);
        }
    }

    [Benchmark(OperationsPerInvoke = Commands, Description = "apply, exchange-core mix")]
    public void Apply()
    {
        var sink = new NullSink();
        Transaction[] commands = _commands;
        for (int i = 0; i < commands.Length; i++)
        {
            _exchange.Apply(in commands[i], ++_lsn, 1, default, ref sink);
        }
    }
}
