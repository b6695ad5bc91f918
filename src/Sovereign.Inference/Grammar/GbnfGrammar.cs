namespace Sovereign.Inference.Grammar;

/// <summary>A llama.cpp GBNF grammar and the rule generation starts from.</summary>
/// <param name="Text">The grammar in GBNF.</param>
/// <param name="Root">The start rule.</param>
public sealed record GbnfGrammar(string Text, string Root = "root");

/// <summary>A value framed by fixed text: <c>Prefix</c>, an instance of <c>Schema</c> (null: any JSON object), <c>Suffix</c>.</summary>
public readonly record struct FramedSchema(string Prefix, System.Text.Json.JsonElement? Schema, string Suffix);

/// <summary>
/// Bounds the compiler puts on what a schema leaves open, so that constrained generation always ends, even on a model
/// that never chooses to close a string or an array (random weights do not).
/// </summary>
public sealed record JsonGrammarLimits
{
    /// <summary>The defaults.</summary>
    public static readonly JsonGrammarLimits Default = new();

    /// <summary>Characters of a string whose schema has no <c>maxLength</c>.</summary>
    public int MaxStringLength { get; init; } = 256;

    /// <summary>Items of an array whose schema has no <c>maxItems</c>.</summary>
    public int MaxArrayItems { get; init; } = 16;

    /// <summary>Properties of an object whose extra properties are open (a map, or <c>json_object</c>).</summary>
    public int MaxOpenProperties { get; init; } = 16;

    /// <summary>Nesting depth of a value whose schema is open (<c>{}</c> or <c>json_object</c>).</summary>
    public int MaxOpenDepth { get; init; } = 4;

    /// <summary>Times a recursive <c>$ref</c> is unrolled; deeper, only its non-recursive alternatives remain.</summary>
    public int MaxRecursionDepth { get; init; } = 4;

    /// <summary>Digits before the decimal point.</summary>
    public int MaxIntegerDigits { get; init; } = 15;

    /// <summary>Digits after the decimal point.</summary>
    public int MaxFractionDigits { get; init; } = 15;

    /// <summary>
    /// Subschemas the compiler visits (each use of a <c>$ref</c> expands it again), enum values and property names
    /// included: the work of compiling is bounded before it is spent. A 3 KB schema of 25 <c>$defs</c> each using the
    /// next twice took 2^25 visits and held a core for minutes after its client had gone.
    /// </summary>
    public int MaxSchemaNodes { get; init; } = 20_000;

    /// <summary>Characters of the grammar the compiler writes (its rules' text).</summary>
    public int MaxGrammarLength { get; init; } = 1 << 20;
}

/// <summary>A schema the compiler cannot honour exactly; the request is refused rather than served with a looser grammar.</summary>
public sealed class UnsupportedSchemaException(string keyword, string path, string message) : Exception(message)
{
    /// <summary>The JSON Schema keyword that is not supported (or is used in an unsupported way).</summary>
    public string Keyword { get; } = keyword;

    /// <summary>JSON Pointer to the schema object that has it.</summary>
    public string Path { get; } = path;
}
