namespace Engine.Tests.Fuzz;

/// <summary>
/// How long the fuzz and property tests in this folder run. The default run is bounded: each test
/// samples a fixed number of cases (from a few hundred sequences of transactions to 50,000 frames)
/// and takes a second or two on an idle machine. A longer run sets the least number of cases every
/// test samples (a test whose default is larger keeps its default), e.g. a night on the book:
/// <code>
/// ENGINE_FUZZ_ITERATIONS=1000000 dotnet test tests/Engine.Tests -c Release --filter "FullyQualifiedName~Engine.Tests.Fuzz.ExchangeFuzzTests"
/// ENGINE_FUZZ_ITERATIONS=10000000 dotnet test tests/Engine.Tests -c Release --filter "FullyQualifiedName~Engine.Tests.Fuzz"
/// </code>
/// Every case is seeded (CsCheck: a PCG seed per case, shrunk on failure); a failure prints the seed
/// of the smallest failing case, and <c>ENGINE_FUZZ_SEED=&lt;seed&gt;</c> (or CsCheck's own
/// <c>CsCheck_Seed</c>) runs that case first, so it replays exactly.
/// </summary>
internal static class FuzzRun
{
    public const string IterationsVariable = "ENGINE_FUZZ_ITERATIONS";
    public const string SeedVariable = "ENGINE_FUZZ_SEED";

    /// <summary>The cases to sample: the test's default, or <see cref="IterationsVariable"/> if that is more.</summary>
    public static long Iterations(long defaultRun) =>
        long.TryParse(Environment.GetEnvironmentVariable(IterationsVariable), out long n) ? Math.Max(n, defaultRun) : defaultRun;

    /// <summary>The seed to run first: <see cref="SeedVariable"/> if set, else CsCheck's default (<c>CsCheck_Seed</c>, or none).</summary>
    public static string? Seed => Environment.GetEnvironmentVariable(SeedVariable) is { Length: > 0 } seed ? seed : null;
}
