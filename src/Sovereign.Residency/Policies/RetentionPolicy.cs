namespace Sovereign.Residency.Policies;

/// <summary>Whether prompt and completion content may be kept.</summary>
public enum RetentionMode
{
    /// <summary>No prompt or completion content is stored anywhere, logs included. The default.</summary>
    None = 0,

    /// <summary>Content may be stored for <see cref="RetentionPolicy.Days"/> days.</summary>
    Store = 1,
}

/// <summary>How long prompt and completion content may be kept. Metadata (counts, timings, audit) is not content.</summary>
public sealed record RetentionPolicy
{
    /// <summary>The longest retention a policy may set: ten years.</summary>
    public const int MaxDays = 3650;

    /// <summary>Store nothing.</summary>
    public static RetentionPolicy None { get; } = new();

    /// <summary>None or Store.</summary>
    public RetentionMode Mode { get; init; } = RetentionMode.None;

    /// <summary>Days content may be kept; 0 with <see cref="RetentionMode.None"/>, at least 1 with <see cref="RetentionMode.Store"/>.</summary>
    public int Days { get; init; }

    /// <summary>Store content for <paramref name="days"/> days.</summary>
    public static RetentionPolicy Store(int days) => new() { Mode = RetentionMode.Store, Days = days };

    /// <summary>True when this keeps content no longer than <paramref name="other"/> does (None is the narrowest).</summary>
    public bool IsWithin(RetentionPolicy other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Mode == RetentionMode.None
            || (other.Mode == RetentionMode.Store && Mode == RetentionMode.Store && Days <= other.Days);
    }

    /// <inheritdoc />
    public override string ToString() => Mode == RetentionMode.None ? "none" : $"store {Days} days";
}
