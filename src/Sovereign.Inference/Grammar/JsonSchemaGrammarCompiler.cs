using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Sovereign.Inference.Grammar;

/// <summary>
/// Compiles a JSON Schema to a llama.cpp GBNF grammar whose every complete sentence is a JSON document that validates
/// against the schema. What cannot be honoured exactly (a keyword, or a use of one) is refused with
/// <see cref="UnsupportedSchemaException"/>; what the schema leaves open is bounded by <see cref="JsonGrammarLimits"/>
/// so that generation always ends.
/// </summary>
/// <remarks>
/// Supported: <c>type</c> (one or several), <c>enum</c>, <c>const</c>, <c>properties</c>, <c>required</c>,
/// <c>additionalProperties</c>, <c>items</c>, <c>minItems</c>, <c>maxItems</c>, <c>minLength</c>, <c>maxLength</c>,
/// <c>format</c> (date, time, date-time, duration, uuid, email, hostname, ipv4, ipv6), <c>pattern</c>
/// (<see cref="PatternGrammar"/>), <c>anyOf</c>, a one-element <c>allOf</c>, <c>$ref</c> into the
/// document (<c>$defs</c>, <c>definitions</c>, recursion included), <c>minimum</c>/<c>maximum</c> and their exclusive forms
/// (integers: any bounds; numbers: whole-valued bounds), and annotations (<c>title</c>, <c>description</c>, ...,
/// and vendor extensions named <c>x-...</c>).
/// </remarks>
public sealed class JsonSchemaGrammarCompiler
{
    private const int MaxEnumeratedRange = 1000;

    private static readonly HashSet<string> Annotations =
    [
        "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly",
        "$defs", "definitions",

        // OpenAPI's and Pydantic's hint at which branch of a 'oneOf' applies: it names, it does not constrain.
        "discriminator",
    ];

    private static readonly HashSet<string> Constraints =
    [
        "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
        "minLength", "maxLength", "format", "pattern", "anyOf", "oneOf", "allOf", "$ref", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "multipleOf",
    ];

    /// <summary>
    /// The most a grammar may repeat one element (<c>{m,n}</c>): one below llama.cpp's <c>MAX_REPETITION_THRESHOLD</c>
    /// (2000), which its parser refuses to reach (<c>n_prev_rules * total_rules &gt;= 2000</c>). A grammar llama.cpp
    /// cannot parse leaves its grammar sampler null: <c>maxLength: 2000</c> crashed the whole server at the first
    /// sampled token. The compiler never puts two repetitions side by side without a terminal between them, which
    /// llama.cpp would multiply.
    /// </summary>
    public const int MaxRepetitions = 1999;

    private static readonly HashSet<string> ObjectKeywords = ["properties", "required", "additionalProperties"];
    private static readonly HashSet<string> ArrayKeywords = ["items", "prefixItems", "minItems", "maxItems"];
    private static readonly HashSet<string> StringKeywords = ["minLength", "maxLength", "format", "pattern"];
    private static readonly HashSet<string> NumberKeywords = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"];

    private static readonly JsonWriterOptions LiteralWriter = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    private static readonly Dictionary<string, string> Primitives = new(StringComparer.Ordinal)
    {
        ["space"] = "| \" \" | \"\\n\" [ \\t]{0,20}",
        ["char"] = "[^\"\\\\\\x7F\\x00-\\x1F] | [\\\\] [\"\\\\/bfnrt]",
        ["boolean"] = "\"true\" | \"false\"",
        ["null"] = "\"null\"",
        ["digit"] = "[0-9]",
        ["hex"] = "[0-9a-f]",
        ["date"] = "[1-9] [0-9]{3} \"-\" ( ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8] ) "
            + "| ( \"0\" [13-9] | \"1\" [0-2] ) \"-\" ( \"29\" | \"30\" ) | ( \"0\" [13578] | \"1\" [02] ) \"-31\" )",
        ["time"] = "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,3} )? ( \"Z\" | [+-] ( \"0\" [0-9] | \"1\" [0-3] ) \":\" [0-5] [0-9] )",
        ["uuid"] = "hex{8} \"-\" hex{4} \"-\" hex{4} \"-\" hex{4} \"-\" hex{12}",
        ["dec-octet"] = "\"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9] [0-9] | [0-9]",
        ["ipv4"] = "dec-octet ( \".\" dec-octet ){3}",
        ["h16"] = "hex{1,4}",
        ["ipv6"] = "h16 ( \":\" h16 ){7}",
        ["host-label"] = "[a-z] ( [a-z0-9\\x2D]{0,20} [a-z0-9] )?",
        ["hostname"] = "host-label ( \".\" host-label ){0,3} \".\" [a-z]{2,6}",
        ["email-atom"] = "[a-z0-9_+\\x2D]{1,16}",
        ["email"] = "email-atom ( \".\" email-atom ){0,2} \"@\" hostname",
        ["dur-num"] = "[0-9]{1,4}",
        ["dur-second"] = "dur-num \"S\"",
        ["dur-minute"] = "dur-num \"M\" dur-second?",
        ["dur-hour"] = "dur-num \"H\" dur-minute?",
        ["dur-time"] = "\"T\" ( dur-hour | dur-minute | dur-second )",
        ["dur-day"] = "dur-num \"D\"",
        ["dur-month"] = "dur-num \"M\" dur-day?",
        ["dur-year"] = "dur-num \"Y\" dur-month?",
        ["duration"] = "\"P\" ( ( dur-day | dur-month | dur-year ) dur-time? | dur-time | dur-num \"W\" )",
    };

    /// <summary>The primitives each one refers to.</summary>
    private static readonly Dictionary<string, string[]> PrimitiveNeeds = new(StringComparer.Ordinal)
    {
        ["uuid"] = ["hex"],
        ["ipv4"] = ["dec-octet"],
        ["h16"] = ["hex"],
        ["ipv6"] = ["h16"],
        ["hostname"] = ["host-label"],
        ["email"] = ["email-atom", "hostname"],
        ["dur-second"] = ["dur-num"],
        ["dur-minute"] = ["dur-num", "dur-second"],
        ["dur-hour"] = ["dur-num", "dur-minute"],
        ["dur-time"] = ["dur-hour", "dur-minute", "dur-second"],
        ["dur-day"] = ["dur-num"],
        ["dur-month"] = ["dur-num", "dur-day"],
        ["dur-year"] = ["dur-num", "dur-month"],
        ["duration"] = ["dur-day", "dur-month", "dur-year", "dur-time", "dur-num"],
    };

    /// <summary>The fewest and the most characters of each format's generated strings.</summary>
    private static readonly Dictionary<string, (int Min, int Max)> FormatLengths = new(StringComparer.Ordinal)
    {
        ["date"] = (10, 10),
        ["time"] = (9, 18),
        ["date-time"] = (20, 29),
        ["duration"] = (3, 32),
        ["uuid"] = (36, 36),
        ["ipv4"] = (7, 15),
        ["ipv6"] = (15, 39),
        ["hostname"] = (4, 98),
        ["email"] = (6, 149),
    };

    private JsonElement _document;
    private readonly JsonGrammarLimits _limits;
    private readonly Dictionary<string, string> _rules = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _ruleByBody = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _activeRefs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _suffixes = new(StringComparer.Ordinal);
    private int _nodes;
    private long _length;

    // References being resolved since the last consumed character: meeting one again would be left recursion,
    // which llama.cpp's grammar parser rejects.
    private HashSet<string> _headRefs = new(StringComparer.Ordinal);

    private JsonSchemaGrammarCompiler(JsonElement document, JsonGrammarLimits limits)
    {
        _document = document;
        _limits = limits;
    }

    /// <summary>Compiles <paramref name="schema"/>; throws <see cref="UnsupportedSchemaException"/> naming what it cannot honour.</summary>
    public static GbnfGrammar Compile(JsonElement schema, JsonGrammarLimits? limits = null)
    {
        var compiler = new JsonSchemaGrammarCompiler(schema, limits ?? JsonGrammarLimits.Default);
        var root = compiler.Visit(schema, "#", "root-value")
            ?? throw new UnsupportedSchemaException("$ref", "#",
                $"The schema's recursive '$ref' has no instance shallower than {compiler._limits.MaxRecursionDepth} levels; give the recursion a base case (an optional property or an array that may be empty).");
        compiler._rules["root"] = root;
        return new GbnfGrammar(compiler.Render());
    }

    /// <summary>
    /// A grammar whose sentences are one of several framed values: <c>prefix value suffix</c>, the value valid against
    /// its schema (null: any JSON object). Tool calls use it: the model's call syntax around the function's arguments.
    /// </summary>
    public static GbnfGrammar CompileFramed(IReadOnlyList<FramedSchema> alternatives, JsonGrammarLimits? limits = null) =>
        CompileFramed(alternatives, limits, shape: null);

    /// <summary>
    /// As <see cref="CompileFramed(IReadOnlyList{FramedSchema}, JsonGrammarLimits?)"/>, with the root built by
    /// <paramref name="shape"/> from the name of the rule that matches one framed value (null: the root is that rule's
    /// body), e.g. several values in a row.
    /// </summary>
    public static GbnfGrammar CompileFramed(IReadOnlyList<FramedSchema> alternatives, JsonGrammarLimits? limits, Func<string, string>? shape)
    {
        ArgumentNullException.ThrowIfNull(alternatives);
        if (alternatives.Count == 0)
        {
            throw new ArgumentException("At least one alternative is needed.", nameof(alternatives));
        }

        var compiler = new JsonSchemaGrammarCompiler(default, limits ?? JsonGrammarLimits.Default);
        var options = new List<string>(alternatives.Count);
        foreach (var (prefix, schema, suffix) in alternatives)
        {
            string value;
            if (schema is { } document)
            {
                // Each schema is its own document for '$ref'; rules are shared (identical bodies are reused).
                compiler._document = document;
                compiler._activeRefs.Clear();
                compiler._headRefs = new HashSet<string>(StringComparer.Ordinal);
                value = compiler.Visit(document, "#", "arguments")
                    ?? throw new UnsupportedSchemaException("$ref", "#", $"The schema's recursive '$ref' has no instance shallower than {compiler._limits.MaxRecursionDepth} levels.");
            }
            else
            {
                value = compiler.AnyObject(compiler._limits.MaxOpenDepth);
            }

            var parts = new[] { prefix.Length > 0 ? Literal(prefix) : "", "( " + value + " )", suffix.Length > 0 ? Literal(suffix) : "" };
            options.Add(string.Join(' ', parts.Where(p => p.Length > 0)));
        }

        var alternation = string.Join(" | ", options);
        compiler._rules["root"] = shape is null ? alternation : shape(compiler.Rule("framed", alternation));
        return new GbnfGrammar(compiler.Render());
    }

    /// <summary>Any JSON object (OpenAI's <c>response_format: json_object</c>), nesting and sizes bounded.</summary>
    public static GbnfGrammar AnyJsonObject(JsonGrammarLimits? limits = null)
    {
        var compiler = new JsonSchemaGrammarCompiler(default, limits ?? JsonGrammarLimits.Default);
        compiler._rules["root"] = compiler.AnyObject(compiler._limits.MaxOpenDepth);
        return new GbnfGrammar(compiler.Render());
    }

    /// <summary>A GBNF string literal matching exactly <paramref name="text"/>.</summary>
    public static string Literal(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var builder = new StringBuilder(text.Length + 2).Append('"');
        foreach (var c in text)
        {
            switch (c)
            {
                case '"': builder.Append("\\\""); break;
                case '\\': builder.Append("\\\\"); break;
                case '\n': builder.Append("\\n"); break;
                case '\r': builder.Append("\\r"); break;
                case '\t': builder.Append("\\t"); break;
                case < ' ': builder.Append("\\x").Append(((int)c).ToString("X2", CultureInfo.InvariantCulture)); break;
                default: builder.Append(c); break;
            }
        }

        return builder.Append('"').ToString();
    }

    /// <summary>The compact JSON text of a value, as the grammar emits it.</summary>
    public static string JsonText(JsonElement value)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, LiteralWriter))
        {
            value.WriteTo(writer);
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private string Render()
    {
        var text = new StringBuilder();
        text.Append("root ::= ").Append(_rules["root"]).Append('\n');
        foreach (var (name, body) in _rules)
        {
            if (name != "root")
            {
                text.Append(name).Append(" ::= ").Append(body).Append('\n');
            }
        }

        return text.ToString();
    }

    /// <summary>Adds a rule (reusing an identical one) and returns its name.</summary>
    private string Rule(string hint, string body)
    {
        if (_ruleByBody.TryGetValue(body, out var existing))
        {
            return existing;
        }

        var name = UniqueName(hint);
        AddLength(name, body);
        _rules[name] = body;
        _ruleByBody[body] = name;
        return name;
    }

    private void AddLength(string name, string body)
    {
        _length += name.Length + body.Length + 6;
        if (_length > _limits.MaxGrammarLength)
        {
            throw new UnsupportedSchemaException("schema", "#",
                $"The schema compiles to a grammar of more than {_limits.MaxGrammarLength.ToString(CultureInfo.InvariantCulture)} characters; simplify it (fewer properties, enum values or alternatives).");
        }
    }

    /// <summary>Counts <paramref name="count"/> nodes of work against <see cref="JsonGrammarLimits.MaxSchemaNodes"/>.</summary>
    private void Spend(int count, string path)
    {
        _nodes += count;
        if (_nodes > _limits.MaxSchemaNodes)
        {
            throw new UnsupportedSchemaException("schema", path,
                $"The schema has more than {_limits.MaxSchemaNodes.ToString(CultureInfo.InvariantCulture)} subschemas, properties and enum values once its '$ref's are expanded where they are used (reached at '{path}'); simplify it.");
        }
    }

    private string UniqueName(string hint)
    {
        var clean = new StringBuilder();
        foreach (var c in hint)
        {
            clean.Append(char.IsAsciiLetterOrDigit(c) ? c : '-');
        }

        var name = clean.Length == 0 ? "r" : clean.ToString().Trim('-');
        if (name.Length == 0 || name == "root")
        {
            name = "r";
        }

        var candidate = name;
        if (_rules.ContainsKey(candidate) || Primitives.ContainsKey(candidate))
        {
            // The next free suffix, remembered per name: a schema with thousands of rules of one name (a $ref used
            // everywhere) must not search from "-2" each time.
            var i = _suffixes.GetValueOrDefault(name, 2);
            do
            {
                candidate = name + "-" + i.ToString(CultureInfo.InvariantCulture);
                i++;
            }
            while (_rules.ContainsKey(candidate) || Primitives.ContainsKey(candidate));
            _suffixes[name] = i;
        }

        return candidate;
    }

    private string Primitive(string name)
    {
        if (!_rules.ContainsKey(name))
        {
            _rules[name] = Primitives[name];
            foreach (var need in PrimitiveNeeds.GetValueOrDefault(name, []))
            {
                Primitive(need);
            }
        }

        return name;
    }

    private string StringRule(int min, int max, string hint)
    {
        Primitive("char");
        var body = max == 0 ? "\"\\\"\\\"\"" : $"\"\\\"\" char{{{min},{max}}} \"\\\"\"";
        return Rule(min == 0 && max == _limits.MaxStringLength ? "string" : hint + "-string", body);
    }

    private string IntegerRule(bool unsigned, bool positive)
    {
        var digits = _limits.MaxIntegerDigits - 1;
        var magnitude = positive ? $"[1-9] [0-9]{{0,{digits}}}" : $"( \"0\" | [1-9] [0-9]{{0,{digits}}} )";
        return Rule(positive ? "positive-integer" : unsigned ? "unsigned-integer" : "integer", unsigned ? magnitude : "\"-\"? " + magnitude);
    }

    private string NumberRule(bool unsigned, int? fractionDigits = null)
    {
        var integer = IntegerRule(unsigned, positive: false);
        var digits = fractionDigits ?? _limits.MaxFractionDigits;
        var name = (unsigned ? "unsigned-number" : "number") + (fractionDigits is null ? "" : $"-{digits}dp");
        return Rule(name, $"{integer} ( \".\" [0-9]{{1,{digits}}} )?");
    }

    private string AnyValue(int depth)
    {
        Primitive("boolean");
        Primitive("null");
        var scalars = $"{StringRule(0, _limits.MaxStringLength, "any")} | {NumberRule(false)} | boolean | null";
        if (depth <= 0)
        {
            return Rule("scalar", scalars);
        }

        return Rule("value-" + depth.ToString(CultureInfo.InvariantCulture), $"{AnyObject(depth)} | {AnyArray(depth)} | {scalars}");
    }

    private string AnyObject(int depth)
    {
        Primitive("space");
        var key = StringRule(0, _limits.MaxStringLength, "key");
        var member = Rule("member-" + depth.ToString(CultureInfo.InvariantCulture), $"{key} space \":\" space {AnyValue(depth - 1)}");
        return Rule("object-" + depth.ToString(CultureInfo.InvariantCulture), ListBody("\"{\"", "\"}\"", member, 0, _limits.MaxOpenProperties));
    }

    private string AnyArray(int depth)
    {
        Primitive("space");
        return Rule("array-" + depth.ToString(CultureInfo.InvariantCulture), ListBody("\"[\"", "\"]\"", AnyValue(depth - 1), 0, _limits.MaxArrayItems));
    }

    /// <summary><c>open item ("," item){min-1,max-1} close</c>, with bounded whitespace.</summary>
    private static string ListBody(string open, string close, string item, int min, int max)
    {
        if (max == 0)
        {
            return $"{open} space {close}";
        }

        var rest = max - 1 == 0 ? "" : $" ( \",\" space {item} space ){{{Math.Max(0, min - 1)},{max - 1}}}";
        var items = $"{item} space{rest}";
        return min == 0 ? $"{open} space ( {items} )? {close}" : $"{open} space {items} {close}";
    }

    /// <summary>The grammar expression for <paramref name="schema"/>, or null when no instance fits in the recursion bound.</summary>
    private string? Visit(JsonElement schema, string path, string hint)
    {
        Spend(1, path);
        switch (schema.ValueKind)
        {
            case JsonValueKind.True:
                return AnyValue(_limits.MaxOpenDepth);
            case JsonValueKind.False:
                throw new UnsupportedSchemaException("false", path, $"The schema at '{path}' is false: no value can validate against it.");
            case JsonValueKind.Object:
                break;
            default:
                throw new UnsupportedSchemaException("schema", path, $"The schema at '{path}' must be an object or a boolean.");
        }

        var keywords = new List<string>();
        foreach (var property in schema.EnumerateObject())
        {
            if (Constraints.Contains(property.Name))
            {
                keywords.Add(property.Name);
            }
            else if (!Annotations.Contains(property.Name) && !property.Name.StartsWith("x-", StringComparison.Ordinal))
            {
                throw new UnsupportedSchemaException(property.Name, path, $"The JSON Schema keyword '{property.Name}' (at '{path}') is not supported for structured output.");
            }
        }

        if (schema.TryGetProperty("$ref", out var reference))
        {
            OnlyWith(keywords, "$ref", path);
            return Reference(reference, path);
        }

        if (schema.TryGetProperty("anyOf", out var anyOf))
        {
            OnlyWith(keywords, "anyOf", path);
            return Alternatives(anyOf, path + "/anyOf", hint);
        }

        if (schema.TryGetProperty("oneOf", out var oneOf))
        {
            OnlyWith(keywords, "oneOf", path);
            RequireDiscriminated(oneOf, path);
            return Alternatives(oneOf, path + "/oneOf", hint, "oneOf");
        }

        if (schema.TryGetProperty("allOf", out var allOf))
        {
            OnlyWith(keywords, "allOf", path);
            if (allOf.ValueKind != JsonValueKind.Array || allOf.GetArrayLength() != 1)
            {
                throw new UnsupportedSchemaException("allOf", path, $"'allOf' (at '{path}') is supported with exactly one subschema.");
            }

            return Visit(allOf[0], path + "/allOf/0", hint);
        }

        var types = Types(schema, path);
        if (schema.TryGetProperty("const", out var constant))
        {
            OnlyWith(keywords, "const", path, "type");
            return Rule(hint, Literal(JsonText(constant)));
        }

        if (schema.TryGetProperty("enum", out var values))
        {
            OnlyWith(keywords, "enum", path, "type");
            if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0)
            {
                throw new UnsupportedSchemaException("enum", path, $"'enum' (at '{path}') must be a non-empty array.");
            }

            Spend(values.GetArrayLength(), path);

            var allowed = values.EnumerateArray().Where(v => types is null || types.Any(t => IsOfType(v, t))).Select(v => Literal(JsonText(v))).ToList();
            if (allowed.Count == 0)
            {
                throw new UnsupportedSchemaException("enum", path, $"No value of 'enum' (at '{path}') has the schema's type.");
            }

            return Rule(hint, string.Join(" | ", allowed));
        }

        types ??= InferTypes(keywords);
        if (types is null)
        {
            return AnyValue(_limits.MaxOpenDepth);
        }

        if (types.Count == 1)
        {
            return Typed(schema, types[0], path, hint);
        }

        var alternatives = types.Select(t => Typed(schema, t, path, hint + "-" + t)).OfType<string>().ToList();
        return alternatives.Count == 0 ? null : Rule(hint, string.Join(" | ", alternatives));
    }

    private static void OnlyWith(List<string> keywords, string keyword, string path, params string[] allowed)
    {
        foreach (var other in keywords)
        {
            if (other != keyword && !allowed.Contains(other))
            {
                throw new UnsupportedSchemaException(keyword, path,
                    $"'{keyword}' (at '{path}') is supported only without sibling constraints such as '{other}'; move '{other}' into the subschemas.");
            }
        }
    }

    private static List<string>? Types(JsonElement schema, string path)
    {
        if (!schema.TryGetProperty("type", out var type))
        {
            return null;
        }

        var names = type.ValueKind switch
        {
            JsonValueKind.String => [type.GetString()!],
            JsonValueKind.Array when type.GetArrayLength() > 0 && type.EnumerateArray().All(t => t.ValueKind == JsonValueKind.String) =>
                type.EnumerateArray().Select(t => t.GetString()!).Distinct(StringComparer.Ordinal).ToList(),
            _ => throw new UnsupportedSchemaException("type", path, $"'type' (at '{path}') must be a type name or a non-empty array of them."),
        };

        foreach (var name in names)
        {
            if (name is not ("object" or "array" or "string" or "integer" or "number" or "boolean" or "null"))
            {
                throw new UnsupportedSchemaException("type", path, $"'type' (at '{path}') has an unknown type '{name}'.");
            }
        }

        // An integer is a number: "number" already admits everything "integer" generates.
        if (names.Contains("number"))
        {
            names.Remove("integer");
        }

        return names;
    }

    private static List<string>? InferTypes(List<string> keywords)
    {
        if (keywords.Any(ObjectKeywords.Contains))
        {
            return ["object"];
        }

        if (keywords.Any(ArrayKeywords.Contains))
        {
            return ["array"];
        }

        if (keywords.Any(StringKeywords.Contains))
        {
            return ["string"];
        }

        return keywords.Any(NumberKeywords.Contains) ? ["number"] : null;
    }

    private static bool IsOfType(JsonElement value, string type) => type switch
    {
        "object" => value.ValueKind == JsonValueKind.Object,
        "array" => value.ValueKind == JsonValueKind.Array,
        "string" => value.ValueKind == JsonValueKind.String,
        "number" => value.ValueKind == JsonValueKind.Number,
        "integer" => value.ValueKind == JsonValueKind.Number && value.TryGetDecimal(out var d) && d == decimal.Truncate(d),
        "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "null" => value.ValueKind == JsonValueKind.Null,
        _ => false,
    };

    private string? Typed(JsonElement schema, string type, string path, string hint) => type switch
    {
        "object" => Object(schema, path, hint),
        "array" => Array(schema, path, hint),
        "string" => String(schema, path, hint),
        "integer" => MultipleOf(schema, path) is null or >= 0 ? Integer(schema, path) : throw MultipleOfRefused(path),
        "number" => MultipleOf(schema, path) switch
        {
            null => Number(schema, path),
            0 => Integer(schema, path),
            var places => Number(schema, path, places),
        },
        "boolean" => Primitive("boolean"),
        _ => Primitive("null"),
    };

    /// <summary>
    /// A reference is expanded in place; a recursive one is unrolled at most <see cref="JsonGrammarLimits.MaxRecursionDepth"/>
    /// times, below which only its non-recursive alternatives remain, so generation always ends.
    /// </summary>
    private string? Reference(JsonElement reference, string path)
    {
        if (reference.ValueKind != JsonValueKind.String || reference.GetString() is not { } pointer || !pointer.StartsWith('#'))
        {
            throw new UnsupportedSchemaException("$ref", path, $"'$ref' (at '{path}') must point into this schema ('#/$defs/...').");
        }

        if (_headRefs.Contains(pointer))
        {
            throw new UnsupportedSchemaException("$ref", path, $"'$ref' '{pointer}' (at '{path}') refers back to itself without nesting it in an object or array.");
        }

        var active = _activeRefs.GetValueOrDefault(pointer);
        if (active >= _limits.MaxRecursionDepth)
        {
            return null;
        }

        var target = Resolve(pointer, path);
        var segments = pointer.Split('/');
        _activeRefs[pointer] = active + 1;
        _headRefs.Add(pointer);
        try
        {
            return Visit(target, pointer, segments.Length > 1 ? segments[^1] : "root-ref");
        }
        finally
        {
            _headRefs.Remove(pointer);
            _activeRefs[pointer] = active;
        }
    }

    private JsonElement Resolve(string pointer, string path)
    {
        var current = _document;
        foreach (var raw in pointer[1..].Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            var segment = Uri.UnescapeDataString(raw).Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
            if (current.ValueKind == JsonValueKind.Object && current.TryGetProperty(segment, out var next))
            {
                current = next;
            }
            else if (current.ValueKind == JsonValueKind.Array && int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index < current.GetArrayLength())
            {
                current = current[index];
            }
            else
            {
                throw new UnsupportedSchemaException("$ref", path, $"'$ref' '{pointer}' (at '{path}') does not resolve in this schema.");
            }
        }

        return current;
    }

    private string? Alternatives(JsonElement anyOf, string path, string hint, string keyword = "anyOf")
    {
        if (anyOf.ValueKind != JsonValueKind.Array || anyOf.GetArrayLength() == 0)
        {
            throw new UnsupportedSchemaException(keyword, path, $"'{keyword}' (at '{path}') must be a non-empty array.");
        }

        var options = anyOf.EnumerateArray().Select((s, i) => Visit(s, $"{path}/{i}", $"{hint}-{i}")).OfType<string>().ToList();
        return options.Count == 0 ? null : Rule(hint, string.Join(" | ", options));
    }

    /// <summary>
    /// A <c>oneOf</c> is generated as its alternatives only when no value can match two of them: every branch is an
    /// object that requires one property with a <c>const</c> (or one-value <c>enum</c>) of its own, a discriminated
    /// union as Pydantic writes it. Anything else could produce a value valid in two branches, which oneOf rejects.
    /// </summary>
    private void RequireDiscriminated(JsonElement oneOf, string path)
    {
        if (oneOf.ValueKind != JsonValueKind.Array || oneOf.GetArrayLength() == 0)
        {
            throw new UnsupportedSchemaException("oneOf", path, $"'oneOf' (at '{path}') must be a non-empty array.");
        }

        if (oneOf.GetArrayLength() == 1)
        {
            return;
        }

        var branches = oneOf.EnumerateArray().Select(branch => Followed(branch, path)).ToList();
        var candidates = branches[0].ValueKind == JsonValueKind.Object && branches[0].TryGetProperty("properties", out var first) && first.ValueKind == JsonValueKind.Object
            ? first.EnumerateObject().Select(p => p.Name).ToList()
            : [];
        foreach (var name in candidates)
        {
            var tags = branches.Select(branch => TagOf(branch, name, path)).ToList();
            if (tags.All(t => t is not null) && tags.Distinct(StringComparer.Ordinal).Count() == tags.Count)
            {
                return;
            }
        }

        throw new UnsupportedSchemaException("oneOf", path,
            $"'oneOf' (at '{path}') is supported when each branch is an object requiring one property with a 'const' of its own (a discriminated union); otherwise a value could match two branches: use 'anyOf'.");
    }

    /// <summary>The schema a chain of <c>$ref</c>s leads to.</summary>
    private JsonElement Followed(JsonElement schema, string path)
    {
        for (var hops = 0; hops < 32 && schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty("$ref", out var reference)
            && reference.ValueKind == JsonValueKind.String && reference.GetString() is { } pointer && pointer.StartsWith('#'); hops++)
        {
            schema = Resolve(pointer, path);
        }

        return schema;
    }

    /// <summary>The JSON text of the value a branch requires of <paramref name="property"/>, or null when it requires none.</summary>
    private string? TagOf(JsonElement branch, string property, string path)
    {
        if (branch.ValueKind != JsonValueKind.Object
            || !branch.TryGetProperty("required", out var required) || required.ValueKind != JsonValueKind.Array
            || !required.EnumerateArray().Any(r => r.ValueKind == JsonValueKind.String && r.GetString() == property)
            || !branch.TryGetProperty("properties", out var properties) || properties.ValueKind != JsonValueKind.Object
            || !properties.TryGetProperty(property, out var declared))
        {
            return null;
        }

        declared = Followed(declared, path);
        if (declared.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        var tag = declared.TryGetProperty("const", out var constant) ? constant
            : declared.TryGetProperty("enum", out var values) && values.ValueKind == JsonValueKind.Array && values.GetArrayLength() == 1 ? values[0]
            : (JsonElement?)null;

        // 1 and 1.0 are one value to JSON Schema: numbers compare by value.
        return tag is { ValueKind: JsonValueKind.Number } number
            ? (number.TryGetDecimal(out var d) ? "n:" + (d / 1.000000000000000000000000000000000m).ToString(CultureInfo.InvariantCulture) : "n:" + number.GetRawText())
            : tag is { } value ? JsonText(value) : null;
    }

    private string? Object(JsonElement schema, string path, string hint)
    {
        var outer = _headRefs;
        _headRefs = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            return ObjectBody(schema, path, hint);
        }
        finally
        {
            _headRefs = outer;
        }
    }

    private string? ObjectBody(JsonElement schema, string path, string hint)
    {
        Primitive("space");
        var properties = new List<(string Name, JsonElement Schema)>();
        if (schema.TryGetProperty("properties", out var declared))
        {
            if (declared.ValueKind != JsonValueKind.Object)
            {
                throw new UnsupportedSchemaException("properties", path, $"'properties' (at '{path}') must be an object.");
            }

            properties.AddRange(declared.EnumerateObject().Select(p => (p.Name, p.Value)));
            Spend(properties.Count, path);
        }

        var required = new List<string>();
        if (schema.TryGetProperty("required", out var requiredNames))
        {
            if (requiredNames.ValueKind != JsonValueKind.Array || requiredNames.EnumerateArray().Any(r => r.ValueKind != JsonValueKind.String))
            {
                throw new UnsupportedSchemaException("required", path, $"'required' (at '{path}') must be an array of property names.");
            }

            Spend(requiredNames.GetArrayLength(), path);
            required.AddRange(requiredNames.EnumerateArray().Select(r => r.GetString()!).Distinct(StringComparer.Ordinal));
        }

        var requiredSet = required.ToHashSet(StringComparer.Ordinal);
        var declaredNames = properties.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);

        JsonElement? extra = schema.TryGetProperty("additionalProperties", out var additional) ? additional : null;
        var closed = extra is { ValueKind: JsonValueKind.False };
        foreach (var name in required)
        {
            if (!declaredNames.Contains(name))
            {
                if (closed)
                {
                    throw new UnsupportedSchemaException("required", path, $"'required' (at '{path}') names '{name}', which 'additionalProperties: false' forbids.");
                }

                properties.Add((name, extra is { ValueKind: JsonValueKind.Object } e ? e : default));
            }
        }

        string? Member(string name, JsonElement memberSchema)
        {
            var value = memberSchema.ValueKind == JsonValueKind.Undefined
                ? AnyValue(_limits.MaxOpenDepth)
                : Visit(memberSchema, $"{path}/properties/{name}", $"{hint}-{name}");
            return value is null ? null : Rule($"{hint}-{name}-kv", $"{Literal(JsonText(JsonSerializer.SerializeToElement(name)))} space \":\" space {value}");
        }

        if (properties.Count == 0)
        {
            if (extra is { ValueKind: JsonValueKind.Object } mapValues)
            {
                var key = StringRule(0, _limits.MaxStringLength, "key");
                var value = Visit(mapValues, path + "/additionalProperties", hint + "-value");
                if (value is null)
                {
                    return Rule(hint, "\"{\" space \"}\"");
                }

                var member = Rule(hint + "-entry", $"{key} space \":\" space {value}");
                return Rule(hint, ListBody("\"{\"", "\"}\"", member, 0, _limits.MaxOpenProperties));
            }

            return Rule(hint, "\"{\" space \"}\"");
        }

        var requiredMembers = properties.Where(p => requiredSet.Contains(p.Name)).Select(p => Member(p.Name, p.Schema)).ToList();
        if (requiredMembers.Any(m => m is null))
        {
            return null;
        }

        var optionalMembers = properties.Where(p => !requiredSet.Contains(p.Name)).Select(p => Member(p.Name, p.Schema)).OfType<string>().ToList();
        string body;
        if (requiredMembers.Count > 0)
        {
            body = string.Join(" \",\" space ", requiredMembers.Select(m => m + " space"))
                + string.Concat(optionalMembers.Select(m => $" ( \",\" space {m} space )?"));
        }
        else
        {
            // The first member present, then any of those after it, in order. Each tail is a rule of its own
            // (rest-i ::= ( "," member-i )? rest-i+1), so the grammar grows linearly with the properties, not
            // quadratically as when every start spelled out its tail.
            var starts = new string[optionalMembers.Count];
            string? tail = null;
            for (var i = optionalMembers.Count - 1; i >= 0; i--)
            {
                var member = optionalMembers[i];
                starts[i] = member + " space" + (tail is null ? "" : " " + tail);
                if (i > 0)
                {
                    tail = Rule($"{hint}-rest-{i.ToString(CultureInfo.InvariantCulture)}", $"( \",\" space {member} space )?" + (tail is null ? "" : " " + tail));
                }
            }

            body = starts.Length == 0 ? "" : "( " + string.Join(" | ", starts) + " )?";
        }

        return Rule(hint, $"\"{{\" space {body} \"}}\"");
    }

    private string? Array(JsonElement schema, string path, string hint)
    {
        var outer = _headRefs;
        _headRefs = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            return ArrayBody(schema, path, hint);
        }
        finally
        {
            _headRefs = outer;
        }
    }

    private string? ArrayBody(JsonElement schema, string path, string hint)
    {
        Primitive("space");
        if (schema.TryGetProperty("prefixItems", out var prefixItems))
        {
            return Tuple(schema, prefixItems, path, hint);
        }

        var min = Count(schema, "minItems", path) ?? 0;
        var max = Count(schema, "maxItems", path) ?? Math.Max(min, _limits.MaxArrayItems);
        if (max < min)
        {
            throw new UnsupportedSchemaException("maxItems", path, $"'maxItems' (at '{path}') is below 'minItems'.");
        }

        var item = schema.TryGetProperty("items", out var items)
            ? Visit(items, path + "/items", hint + "-item")
            : AnyValue(_limits.MaxOpenDepth);
        if (item is null)
        {
            return min == 0 ? Rule(hint, "\"[\" space \"]\"") : null;
        }

        return Rule(hint, ListBody("\"[\"", "\"]\"", item, min, max));
    }

    /// <summary>
    /// <c>prefixItems</c> (a tuple: Pydantic's <c>tuple[int, str]</c>): item i validates against the i-th schema; items
    /// after them against <c>items</c> (any value when absent, none when false). Written from the last position back, each
    /// position past <c>minItems</c> optional.
    /// </summary>
    private string? Tuple(JsonElement schema, JsonElement prefixItems, string path, string hint)
    {
        if (prefixItems.ValueKind != JsonValueKind.Array || prefixItems.GetArrayLength() == 0)
        {
            throw new UnsupportedSchemaException("prefixItems", path, $"'prefixItems' (at '{path}') must be a non-empty array.");
        }

        var count = prefixItems.GetArrayLength();
        if (count > _limits.MaxArrayItems * 4)
        {
            throw new UnsupportedSchemaException("prefixItems", path, $"'prefixItems' (at '{path}') has more than {(_limits.MaxArrayItems * 4).ToString(CultureInfo.InvariantCulture)} positions.");
        }

        var noMore = schema.TryGetProperty("items", out var items) && items.ValueKind == JsonValueKind.False;
        var min = Count(schema, "minItems", path) ?? 0;
        var max = Count(schema, "maxItems", path) ?? (noMore ? count : count + _limits.MaxArrayItems);
        if (noMore)
        {
            max = Math.Min(max, count);
        }

        if (max < min)
        {
            throw new UnsupportedSchemaException("maxItems", path, $"'maxItems' (at '{path}') is below 'minItems' (with 'items': false, the tuple's length).");
        }

        var positions = new List<string>();
        for (var i = 0; i < Math.Min(count, max); i++)
        {
            var item = Visit(prefixItems[i], $"{path}/prefixItems/{i}", $"{hint}-{i}");
            if (item is null)
            {
                // No instance within the recursion bound: the tuple ends before this position, if it may.
                if (i < min)
                {
                    return null;
                }

                max = i;
                break;
            }

            positions.Add(item);
        }

        if (positions.Count == 0)
        {
            return Rule(hint, "\"[\" space \"]\"");
        }

        var tail = "";
        if (max > positions.Count && positions.Count == count)
        {
            // Here items is not false (max would be the tuple's length): absent is any value, else its schema (Visit
            // refuses a draft-7 array of schemas, which it used to skip silently).
            var extra = items.ValueKind == JsonValueKind.Undefined
                ? AnyValue(_limits.MaxOpenDepth)
                : Visit(items, path + "/items", hint + "-item");
            if (extra is not null)
            {
                var least = Math.Max(0, min - count);
                tail = $"( \",\" space {extra} space ){{{least.ToString(CultureInfo.InvariantCulture)},{(max - count).ToString(CultureInfo.InvariantCulture)}}}";
            }
            else if (min > count)
            {
                return null;
            }
        }

        for (var i = positions.Count - 1; i >= 1; i--)
        {
            var next = tail.Length == 0 ? "" : " " + tail;
            var step = $"\",\" space {positions[i]} space{next}";
            tail = i < min ? step : $"( {step} )?";
        }

        var body = $"{positions[0]} space{(tail.Length == 0 ? "" : " " + tail)}";
        return Rule(hint, min == 0 ? $"\"[\" space ( {body} )? \"]\"" : $"\"[\" space {body} \"]\"");
    }

    private string String(JsonElement schema, string path, string hint)
    {
        var min = Count(schema, "minLength", path);
        var max = Count(schema, "maxLength", path);
        if (max < min)
        {
            throw new UnsupportedSchemaException("maxLength", path, $"'maxLength' (at '{path}') is below 'minLength'.");
        }

        if (schema.TryGetProperty("pattern", out var pattern))
        {
            return Pattern(pattern, min, max, path, hint);
        }

        if (schema.TryGetProperty("format", out var format))
        {
            var name = format.ValueKind == JsonValueKind.String ? format.GetString() : null;
            if (name is null || !FormatLengths.TryGetValue(name, out var lengths))
            {
                throw new UnsupportedSchemaException("format", path,
                    $"'format' '{name}' (at '{path}') is not supported; supported formats: {string.Join(", ", FormatLengths.Keys)}.");
            }

            // The format's strings must all fit the lengths: the grammar cannot count characters across its rules.
            if (lengths.Min < (min ?? 0) || lengths.Max > (max ?? int.MaxValue))
            {
                throw new UnsupportedSchemaException(min > lengths.Min ? "minLength" : "maxLength", path,
                    $"'format' '{name}' (at '{path}') generates strings of {lengths.Min.ToString(CultureInfo.InvariantCulture)} to {lengths.Max.ToString(CultureInfo.InvariantCulture)} characters, outside the schema's 'minLength'/'maxLength'; drop the length or widen it.");
            }

            var rule = name == "date-time" ? Rule("date-time", $"{Primitive("date")} \"T\" {Primitive("time")}") : Primitive(name);
            return Rule(hint, $"\"\\\"\" {rule} \"\\\"\"");
        }

        var least = min ?? 0;
        return StringRule(least, max ?? Math.Max(least, _limits.MaxStringLength), hint);
    }

    /// <summary>
    /// A string matching <paramref name="pattern"/> as a whole (<see cref="PatternGrammar"/>). Open repetitions get
    /// the most room that keeps every string within <c>maxLength</c> (else the default string bound); a pattern whose
    /// strings cannot all fit the schema's lengths is refused, since the grammar cannot count across its rules.
    /// </summary>
    private string Pattern(JsonElement pattern, int? min, int? max, string path, string hint)
    {
        if (pattern.ValueKind != JsonValueKind.String)
        {
            throw new UnsupportedSchemaException("pattern", path, $"'pattern' (at '{path}') must be a string.");
        }

        var node = PatternGrammar.Parse(pattern.GetString()!, path);
        var limit = max ?? long.MaxValue;
        int low = 0, high = Math.Max(min ?? 0, max ?? _limits.MaxStringLength);
        if (PatternGrammar.Lengths(node, 0).Max > limit)
        {
            throw new UnsupportedSchemaException("maxLength", path,
                $"'pattern' (at '{path}') has strings longer than 'maxLength' ({limit.ToString(CultureInfo.InvariantCulture)}) even at their shortest repetitions; the grammar cannot cut a pattern's strings at a length.");
        }

        while (low < high)
        {
            var mid = low + ((high - low + 1) / 2);
            if (PatternGrammar.Lengths(node, mid).Max <= limit)
            {
                low = mid;
            }
            else
            {
                high = mid - 1;
            }
        }

        if (PatternGrammar.Lengths(node, low).Min < (min ?? 0))
        {
            throw new UnsupportedSchemaException("minLength", path,
                $"'pattern' (at '{path}') matches strings shorter than 'minLength'; state the least length in the pattern itself (for example '{{{min!.Value.ToString(CultureInfo.InvariantCulture)},}}').");
        }

        var body = PatternGrammar.Emit(node, low, expression => Rule(hint + "-pattern", expression), path);
        return Rule(hint, body.Length == 0 ? "\"\\\"\\\"\"" : $"\"\\\"\" {body} \"\\\"\"");
    }

    private string Integer(JsonElement schema, string path)
    {
        var (lowerBound, upperBound) = (Lower(schema, path), Upper(schema, path));
        decimal? lower = lowerBound is var (l, strictL) ? (strictL ? decimal.Floor(l) + 1 : decimal.Ceiling(l)) : null;
        decimal? upper = upperBound is var (u, strictU) ? (strictU ? decimal.Ceiling(u) - 1 : decimal.Floor(u)) : null;
        if (lower is null && upper is null)
        {
            return IntegerRule(unsigned: false, positive: false);
        }

        if (lower is { } low && upper is { } high)
        {
            if (high < low)
            {
                throw new UnsupportedSchemaException("maximum", path, $"'maximum' (at '{path}') is below 'minimum': no integer validates.");
            }

            if (high - low < MaxEnumeratedRange)
            {
                var values = new List<string>();
                for (var v = low; v <= high; v++)
                {
                    values.Add(Literal(v.ToString(CultureInfo.InvariantCulture)));
                }

                return Rule($"integer-{low}-to-{high}", string.Join(" | ", values));
            }
        }

        if (upper is null && lower is 0m or 1m)
        {
            return IntegerRule(unsigned: true, positive: lower == 1m);
        }

        var (from, to) = Clamped(lower, upper, path);
        return Rule("integer-range", IntegerRange(from, to));
    }

    /// <summary>
    /// A number between whole-valued bounds: the integers in range, and the fractions whose whole interval between two
    /// integers lies in range (written with a last fraction digit that is not 0, so never equal to a bound).
    /// </summary>
    /// <summary>
    /// <c>multipleOf</c> as decimal places: 1 is 0 (whole numbers), 0.01 is 2 (amounts of money); null when absent, -1
    /// for any other step (a grammar cannot test divisibility by 3 or 0.25 within its bounds).
    /// </summary>
    private static int? MultipleOf(JsonElement schema, string path)
    {
        if (!schema.TryGetProperty("multipleOf", out var step))
        {
            return null;
        }

        if (step.ValueKind != JsonValueKind.Number || !step.TryGetDecimal(out var value) || value <= 0)
        {
            throw new UnsupportedSchemaException("multipleOf", path, $"'multipleOf' (at '{path}') must be a number above 0.");
        }

        for (var places = 0; places <= 15; places++)
        {
            if (value == 1m / (decimal)Math.Pow(10, places))
            {
                return places;
            }
        }

        return -1;
    }

    private static UnsupportedSchemaException MultipleOfRefused(string path) =>
        new("multipleOf", path, $"'multipleOf' (at '{path}') is supported as 1, 0.1, 0.01 and so on (whole numbers or a number of decimal places).");

    private string Number(JsonElement schema, string path, int? places = null)
    {
        if (places < 0)
        {
            throw MultipleOfRefused(path);
        }

        var (lowerBound, upperBound) = (Lower(schema, path), Upper(schema, path));
        if (lowerBound is null && upperBound is null)
        {
            return NumberRule(unsigned: false, places);
        }

        if (lowerBound is (0m, false) && upperBound is null)
        {
            return NumberRule(unsigned: true, places);
        }

        foreach (var (bound, keyword) in new[] { (lowerBound, "minimum"), (upperBound, "maximum") })
        {
            if (bound is var (value, _) && value != decimal.Truncate(value))
            {
                throw new UnsupportedSchemaException(keyword, path,
                    $"'{keyword}' (at '{path}') is supported for numbers at whole values (such as 0, 1 or 100), not {value.ToString(CultureInfo.InvariantCulture)}.");
            }
        }

        var max = MaxMagnitude();
        var lower = lowerBound?.Value;
        var upper = upperBound?.Value;
        var options = new List<string>();
        decimal? intLow = lowerBound is var (l, strictL) ? (strictL ? l + 1 : l) : null;
        decimal? intHigh = upperBound is var (u, strictU) ? (strictU ? u - 1 : u) : null;
        if ((intLow ?? -max) <= (intHigh ?? max) && (intLow ?? -max) <= max && (intHigh ?? max) >= -max)
        {
            var (from, to) = Clamped(intLow, intHigh, path);
            options.Add(IntegerRange(from, to));
        }

        var digits = places ?? _limits.MaxFractionDigits;
        var fraction = Rule($"nonzero-fraction-{digits}", digits == 1 ? "\".\" [1-9]" : $"\".\" [0-9]{{0,{digits - 1}}} [1-9]");

        // n.f lies in (n, n+1): in range when n >= lower and n + 1 <= upper; -m.f lies in (-(m+1), -m).
        var positiveLow = Math.Max(lower ?? 0, 0);
        var positiveHigh = Math.Min((upper ?? max + 1) - 1, max);
        if (positiveLow <= positiveHigh)
        {
            options.Add($"{Magnitudes((long)positiveLow, (long)positiveHigh)} {fraction}");
        }

        var negativeLow = Math.Max(upper is { } up ? -up : 0, 0);
        var negativeHigh = Math.Min(lower is { } low ? -low - 1 : max, max);
        if (negativeLow <= negativeHigh)
        {
            options.Add($"\"-\" {Magnitudes((long)negativeLow, (long)negativeHigh)} {fraction}");
        }

        if (options.Count == 0)
        {
            throw new UnsupportedSchemaException("maximum", path,
                $"No number of at most {_limits.MaxIntegerDigits.ToString(CultureInfo.InvariantCulture)} digits lies between 'minimum' and 'maximum' (at '{path}').");
        }

        return Rule("number-range", string.Join(" | ", options));
    }

    /// <summary>The stricter of <c>minimum</c> and <c>exclusiveMinimum</c> (strict: exclusive).</summary>
    private static (decimal Value, bool Strict)? Lower(JsonElement schema, string path) =>
        (Bound(schema, "minimum", path), Bound(schema, "exclusiveMinimum", path)) switch
        {
            (null, null) => null,
            ({ } inclusive, null) => (inclusive, false),
            (null, { } exclusive) => (exclusive, true),
            ({ } inclusive, { } exclusive) => exclusive >= inclusive ? (exclusive, true) : (inclusive, false),
        };

    /// <summary>The stricter of <c>maximum</c> and <c>exclusiveMaximum</c> (strict: exclusive).</summary>
    private static (decimal Value, bool Strict)? Upper(JsonElement schema, string path) =>
        (Bound(schema, "maximum", path), Bound(schema, "exclusiveMaximum", path)) switch
        {
            (null, null) => null,
            ({ } inclusive, null) => (inclusive, false),
            (null, { } exclusive) => (exclusive, true),
            ({ } inclusive, { } exclusive) => exclusive <= inclusive ? (exclusive, true) : (inclusive, false),
        };

    /// <summary>The largest magnitude generated: <see cref="JsonGrammarLimits.MaxIntegerDigits"/> nines.</summary>
    private decimal MaxMagnitude() => (decimal)Math.Pow(10, Math.Min(_limits.MaxIntegerDigits, 18)) - 1;

    /// <summary>Integer bounds within the digits generated; refused when no integer of those digits is in range.</summary>
    private (long From, long To) Clamped(decimal? lower, decimal? upper, string path)
    {
        var max = MaxMagnitude();
        var from = Math.Max(lower ?? -max, -max);
        var to = Math.Min(upper ?? max, max);
        if (from > to)
        {
            var keyword = lower > max ? "minimum" : "maximum";
            throw new UnsupportedSchemaException(keyword, path,
                $"'{keyword}' (at '{path}') admits no integer of at most {_limits.MaxIntegerDigits.ToString(CultureInfo.InvariantCulture)} digits, the most generated.");
        }

        return ((long)from, (long)to);
    }

    /// <summary>GBNF for the integers from <paramref name="from"/> to <paramref name="to"/>, written as JSON writes them.</summary>
    private static string IntegerRange(long from, long to)
    {
        var options = new List<string>(2);
        if (from < 0)
        {
            options.Add($"\"-\" {Magnitudes(to < 0 ? -to : 1, -from)}");
        }

        if (to >= 0)
        {
            options.Add(Magnitudes(Math.Max(from, 0), to));
        }

        return options.Count == 1 ? options[0] : "( " + string.Join(" | ", options) + " )";
    }

    /// <summary>The decimal numerals of <paramref name="low"/> to <paramref name="high"/> (both at least 0), no leading zeros.</summary>
    private static string Magnitudes(long low, long high)
    {
        var options = new List<string>();
        var lowText = low.ToString(CultureInfo.InvariantCulture);
        var highText = high.ToString(CultureInfo.InvariantCulture);
        for (var digits = lowText.Length; digits <= highText.Length; digits++)
        {
            var from = digits == lowText.Length ? lowText : "1" + new string('0', digits - 1);
            var to = digits == highText.Length ? highText : new string('9', digits);
            options.Add(SameLength(from, to));
        }

        return options.Count == 1 ? options[0] : "( " + string.Join(" | ", options) + " )";
    }

    /// <summary>The numerals between two of one length (the classic range-to-pattern split on the first digit).</summary>
    private static string SameLength(string low, string high)
    {
        if (low.Length == 1)
        {
            return low == high ? Literal(low) : $"[{low}-{high}]";
        }

        if (low[0] == high[0])
        {
            return $"{Literal(low[..1])} {SameLength(low[1..], high[1..])}";
        }

        var rest = low.Length - 1;
        var lowFull = low.AsSpan(1).IndexOfAnyExcept('0') < 0;
        var highFull = high.AsSpan(1).IndexOfAnyExcept('9') < 0;
        var first = lowFull ? low[0] : (char)(low[0] + 1);
        var last = highFull ? high[0] : (char)(high[0] - 1);
        var options = new List<string>(3);
        if (!lowFull)
        {
            options.Add($"{Literal(low[..1])} {SameLength(low[1..], new string('9', rest))}");
        }

        if (first <= last)
        {
            var head = first == last ? Literal(first.ToString()) : $"[{first}-{last}]";
            options.Add(rest == 1 ? $"{head} [0-9]" : $"{head} [0-9]{{{rest.ToString(CultureInfo.InvariantCulture)}}}");
        }

        if (!highFull)
        {
            options.Add($"{Literal(high[..1])} {SameLength(new string('0', rest), high[1..])}");
        }

        return options.Count == 1 ? options[0] : "( " + string.Join(" | ", options) + " )";
    }

    private static int? Count(JsonElement schema, string keyword, string path)
    {
        if (!schema.TryGetProperty(keyword, out var value))
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var count) || count < 0)
        {
            throw new UnsupportedSchemaException(keyword, path, $"'{keyword}' (at '{path}') must be a non-negative integer.");
        }

        if (count > MaxRepetitions)
        {
            throw new UnsupportedSchemaException(keyword, path,
                $"'{keyword}' (at '{path}') may be at most {MaxRepetitions.ToString(CultureInfo.InvariantCulture)}: the grammar engine repeats an element at most that many times.");
        }

        return count;
    }

    private static decimal? Bound(JsonElement schema, string keyword, string path)
    {
        if (!schema.TryGetProperty(keyword, out var value))
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetDecimal(out var bound)
            ? bound
            : throw new UnsupportedSchemaException(keyword, path, $"'{keyword}' (at '{path}') must be a number.");
    }
}
