using System.Diagnostics;

namespace Engine.Tests.Support;

/// <summary>Waits on a condition with a deadline: tests never sleep to paper over a race.</summary>
public static class Until
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Polls <paramref name="condition"/> until it holds; fails the test naming <paramref name="what"/> if it does not within the timeout.</summary>
    public static void True(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var clock = Stopwatch.StartNew();
        var spinner = new SpinWait();
        while (!condition())
        {
            TimeSpan elapsed = clock.Elapsed;
            if (elapsed > limit)
            {
                Assert.Fail($"timed out after {limit.TotalSeconds:0.#} s waiting for: {what}");
            }
            // Short waits are common (a stage finishing a batch): yield without sleeping for the
            // first milliseconds, then sleep so a long wait does not steal a core from the code under test.
            if (elapsed < TimeSpan.FromMilliseconds(20))
            {
                spinner.SpinOnce(sleep1Threshold: -1);
            }
            else
            {
                Thread.Sleep(1);
            }
        }
    }
}
