namespace Sovereign.Inference.Templates;

/// <summary>
/// A parsed Jinja template: the subset that model chat templates use, with Hugging Face's environment settings
/// (<c>trim_blocks</c>, <c>lstrip_blocks</c>, <c>loopcontrols</c>, <c>tojson</c> as <c>json.dumps</c>,
/// <c>raise_exception</c>, <c>strftime_now</c>). Parse once, render many times; rendering is bounded by
/// <see cref="TemplateLimits"/>.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly IReadOnlyList<Stmt> _body;

    private JinjaTemplate(string source, IReadOnlyList<Stmt> body)
    {
        Source = source;
        _body = body;
    }

    /// <summary>The template text.</summary>
    public string Source { get; }

    /// <summary>Parses a template; throws <see cref="TemplateNotSupportedException"/> for what the engine does not implement.</summary>
    public static JinjaTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new JinjaTemplate(source, JinjaParser.Parse(source));
    }

    /// <summary>
    /// Renders with the given variables. Values may be <see cref="System.Text.Json.JsonElement"/> (converted with
    /// JSON's types), strings, booleans, numbers, or null.
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables, TemplateLimits? limits = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var globals = JinjaBuiltins.Globals(time ?? TimeProvider.System);
        foreach (var (name, value) in variables)
        {
            globals[name] = value switch
            {
                System.Text.Json.JsonElement json => JinjaValues.FromJson(json),
                int i => (long)i,
                float f => (double)f,
                _ => value,
            };
        }

        return new JinjaInterpreter(globals, limits ?? TemplateLimits.Default).Render(_body);
    }
}
