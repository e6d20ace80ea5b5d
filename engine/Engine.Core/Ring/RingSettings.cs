namespace Engine.Core.Ring;

/// <summary>
/// Everything a pipeline's ring is configured by, with its defaults. Validated once by
/// <see cref="Validate"/>; printable.
/// </summary>
public sealed class RingSettings
{
    /// <summary>Smallest ring: 2 slots (tests use 4-8 so wrap-around happens at once).</summary>
    public const int MinSize = 2;

    /// <summary>Largest ring: 2^30 slots (the slot index must fit an int).</summary>
    public const int MaxSize = 1 << 30;

    /// <summary>Slots in the ring, a power of two. Default 65,536: enough to absorb a burst while the journal commits.</summary>
    public int Size { get; init; } = 1 << 16;

    /// <summary>One producing thread or many. Default single.</summary>
    public ProducerKind Producers { get; init; } = ProducerKind.Single;

    /// <summary>How threads wait. Default <see cref="WaitStrategy.Adaptive"/>: it must not spin forever on 2 shared cores.</summary>
    public WaitStrategy Wait { get; init; } = WaitStrategy.Adaptive();

    /// <summary>
    /// Called on the stage's thread for every handler exception, whatever the policy. Optional;
    /// the halting fault is also kept in <see cref="Pipeline{T}.Fault"/>.
    /// </summary>
    public Action<StageFault>? OnFault { get; init; }

    /// <summary>Throws if a setting is out of range; returns this for chaining.</summary>
    public RingSettings Validate()
    {
        CheckSize(Size);
        if (!Enum.IsDefined(Producers))
        {
            throw new ArgumentOutOfRangeException(nameof(Producers), Producers, "unknown producer kind");
        }
        ArgumentNullException.ThrowIfNull(Wait);
        return this;
    }

    internal static void CheckSize(int size)
    {
        if (size < MinSize || size > MaxSize || (size & (size - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"the ring size must be a power of two from {MinSize} to {MaxSize}");
        }
    }

    public override string ToString() => $"ring size {Size}, {Producers.ToString().ToLowerInvariant()} producer, wait {Wait}";
}
