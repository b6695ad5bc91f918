namespace Sovereign.Inference.Templates;

/// <summary>Base of every error the template engine raises.</summary>
public abstract class TemplateException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The template uses syntax or a construct the engine does not implement: the caller falls back to another renderer.
/// </summary>
public sealed class TemplateNotSupportedException(string message, int line) : TemplateException($"{message} (line {line})")
{
    /// <summary>1-based line of the template where the problem is.</summary>
    public int Line { get; } = line;
}

/// <summary>The template failed while rendering: a type error, an undefined value used as an object, a bad call.</summary>
public sealed class TemplateRenderException(string message) : TemplateException(message);

/// <summary>The template called <c>raise_exception</c>: it refuses the input it was given (e.g. roles that do not alternate).</summary>
public sealed class TemplateRaisedException(string message) : TemplateException(message);

/// <summary>Rendering passed one of the <see cref="TemplateLimits"/>; templates come from user-supplied files.</summary>
public sealed class TemplateLimitException(string message) : TemplateException(message);

/// <summary>Bounds on one render, so that a hostile or broken template cannot hang or exhaust the process.</summary>
public sealed record TemplateLimits
{
    /// <summary>The defaults.</summary>
    public static readonly TemplateLimits Default = new();

    /// <summary>Characters of output.</summary>
    public int MaxOutputCharacters { get; init; } = 4 * 1024 * 1024;

    /// <summary>Loop iterations, all loops together.</summary>
    public int MaxLoopIterations { get; init; } = 1_000_000;

    /// <summary>Nested macro calls.</summary>
    public int MaxCallDepth { get; init; } = 64;

    /// <summary>Expression and statement evaluations, all together.</summary>
    public long MaxSteps { get; init; } = 20_000_000;
}
