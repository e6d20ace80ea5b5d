namespace Engine.Core.Ring;

/// <summary>
/// The work of one pipeline stage, called on the stage's own thread, one event at a time, in
/// sequence order.
/// </summary>
/// <typeparam name="T">The ring's slot type.</typeparam>
/// <remarks>
/// Implement it on a <c>struct</c>: stages take the handler as a struct type parameter, so the JIT
/// compiles each stage's loop for its handler and inlines <see cref="OnEvent"/> (a class handler
/// would go through an interface call per event). The stage keeps its own copy of the struct and
/// calls it in place, so fields the handler mutates persist; keep shared state in a class it refers to.
/// </remarks>
public interface IStageHandler<T>
    where T : struct
{
    /// <summary>Handles the event in <paramref name="slot"/>.</summary>
    /// <param name="slot">The slot, in place: a stage may write fields that later stages read.</param>
    /// <param name="sequence">The event's sequence.</param>
    /// <param name="endOfBatch">True for the last event available now: the place to flush, cut a block, signal.</param>
    void OnEvent(ref T slot, long sequence, bool endOfBatch);
}
