using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Sovereign.Inference.Templates;

/// <summary>
/// The value model of the engine, with Python's semantics where templates depend on them: <c>null</c> is None;
/// <see cref="JinjaUndefined"/> is a missing name or key; numbers are <see cref="long"/> or <see cref="double"/>;
/// lists and tuples are <see cref="List{T}"/>; mappings are <see cref="JinjaDict"/> (insertion-ordered, string keys).
/// </summary>
internal static class JinjaValues
{
    public static bool IsTruthy(object? value) => value switch
    {
        null or JinjaUndefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> list => list.Count > 0,
        JinjaDict dict => dict.Count > 0,
        _ => true,
    };

    /// <summary>The value as <c>str()</c> prints it (Undefined prints nothing, as Jinja's default Undefined does).</summary>
    public static string ToText(object? value) => value switch
    {
        string s => s,
        JinjaUndefined => "",
        _ => Repr(value, topLevel: true),
    };

    /// <summary>Python's <c>repr</c> (strings inside containers are quoted).</summary>
    public static string Repr(object? value, bool topLevel = false)
    {
        var text = new StringBuilder();
        AppendRepr(text, value, topLevel, 0);
        return text.ToString();
    }

    private static void AppendRepr(StringBuilder text, object? value, bool topLevel, int depth)
    {
        if (depth > 100)
        {
            throw new TemplateRenderException("A value nests too deeply to print.");
        }

        switch (value)
        {
            case null: text.Append("None"); break;
            case JinjaUndefined: text.Append(topLevel ? "" : "None"); break;
            case bool b: text.Append(b ? "True" : "False"); break;
            case long l: text.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: text.Append(FormatFloat(d)); break;
            case string s when topLevel: text.Append(s); break;
            case string s: AppendPythonString(text, s); break;
            case List<object?> list:
                text.Append('[');
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0)
                    {
                        text.Append(", ");
                    }

                    AppendRepr(text, list[i], false, depth + 1);
                }

                text.Append(']');
                break;
            case JinjaDict dict:
                text.Append('{');
                var first = true;
                foreach (var (key, item) in dict)
                {
                    if (!first)
                    {
                        text.Append(", ");
                    }

                    first = false;
                    AppendPythonString(text, key);
                    text.Append(": ");
                    AppendRepr(text, item, false, depth + 1);
                }

                text.Append('}');
                break;
            case JinjaNamespace: text.Append("<Namespace>"); break;
            case JinjaCallable callable: text.Append("<function ").Append(callable.Name).Append('>'); break;
            default: text.Append(value.ToString()); break;
        }
    }

    private static void AppendPythonString(StringBuilder text, string s)
    {
        var quote = s.Contains('\'', StringComparison.Ordinal) && !s.Contains('"', StringComparison.Ordinal) ? '"' : '\'';
        text.Append(quote);
        foreach (var c in s)
        {
            switch (c)
            {
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case < ' ': text.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture)); break;
                default:
                    if (c == quote)
                    {
                        text.Append('\\');
                    }

                    text.Append(c);
                    break;
            }
        }

        text.Append(quote);
    }

    /// <summary>A float as Python's <c>repr</c> writes it: <c>1.0</c>, <c>0.1</c>, <c>1e+16</c>, <c>inf</c>, <c>nan</c>.</summary>
    public static string FormatFloat(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }

        var exponent = d == 0 ? 0 : (int)Math.Floor(Math.Log10(Math.Abs(d)));
        var shortest = d.ToString("R", CultureInfo.InvariantCulture);
        var e = shortest.IndexOf('E', StringComparison.Ordinal);
        if (exponent is >= 16 or < -4 && e > 0)
        {
            // Python's exponent form: shortest mantissa, then e+XX with at least two digits.
            var power = int.Parse(shortest.AsSpan(e + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            return shortest[..e] + "e" + (power < 0 ? "-" : "+") + Math.Abs(power).ToString("00", CultureInfo.InvariantCulture);
        }

        if (e > 0)
        {
            shortest = ((decimal)d).ToString(CultureInfo.InvariantCulture);
        }

        return shortest.Contains('.', StringComparison.Ordinal) ? shortest : shortest + ".0";
    }

    /// <summary>Python's <c>==</c>: numbers across int and float, containers element-wise.</summary>
    public static bool AreEqual(object? a, object? b)
    {
        if (a is JinjaUndefined)
        {
            return b is JinjaUndefined;
        }

        switch (a, b)
        {
            case (null, null): return true;
            case (null, _) or (_, null): return false;
            case (bool x, bool y): return x == y;
            case (string x, string y): return string.Equals(x, y, StringComparison.Ordinal);
            case (List<object?> x, List<object?> y):
                if (x.Count != y.Count)
                {
                    return false;
                }

                for (var i = 0; i < x.Count; i++)
                {
                    if (!AreEqual(x[i], y[i]))
                    {
                        return false;
                    }
                }

                return true;
            case (JinjaDict x, JinjaDict y):
                return x.Count == y.Count && x.All(pair => y.TryGetValue(pair.Key, out var other) && AreEqual(pair.Value, other));
        }

        if (IsNumber(a) && IsNumber(b))
        {
            return ToDouble(a) == ToDouble(b) && (a is not long la || b is not long lb || la == lb);
        }

        return ReferenceEquals(a, b);
    }

    /// <summary>bool counts as a number, as in Python (True + 1 == 2).</summary>
    public static bool IsNumber(object? value) => value is long or double or bool;

    public static double ToDouble(object? value) => value switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new TemplateRenderException($"Expected a number, got {TypeName(value)}."),
    };

    public static string TypeName(object? value) => value switch
    {
        null => "None",
        JinjaUndefined u => $"undefined ('{u.Name}')",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        JinjaDict => "dict",
        JinjaNamespace => "namespace",
        JinjaCallable => "function",
        _ => value.GetType().Name,
    };

    /// <summary>Converts request JSON into template values (integers stay integers).</summary>
    public static object? FromJson(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => FromJsonObject(element),
        JsonValueKind.Array => element.EnumerateArray().Select(FromJson).ToList(),
        JsonValueKind.String => element.GetString(),
        JsonValueKind.Number => element.TryGetInt64(out var l) ? (object)l : element.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => null,
    };

    private static JinjaDict FromJsonObject(JsonElement element)
    {
        var dict = new JinjaDict();
        foreach (var property in element.EnumerateObject())
        {
            dict[property.Name] = FromJson(property.Value);
        }

        return dict;
    }

    /// <summary>
    /// <c>tojson</c> as Hugging Face defines it: Python's <c>json.dumps</c> with <c>ensure_ascii=False</c>, separators
    /// <c>", "</c> and <c>": "</c> (<c>","</c> at line ends when indenting), keys in insertion order unless sorted.
    /// </summary>
    public static string ToJson(object? value, int? indent, bool sortKeys)
    {
        var text = new StringBuilder();
        AppendJson(text, value, indent, sortKeys, 0);
        return text.ToString();
    }

    private static void AppendJson(StringBuilder text, object? value, int? indent, bool sortKeys, int depth)
    {
        if (depth > 100)
        {
            throw new TemplateRenderException("A value nests too deeply for tojson.");
        }

        switch (value)
        {
            case null or JinjaUndefined: text.Append("null"); break;
            case bool b: text.Append(b ? "true" : "false"); break;
            case long l: text.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d:
                text.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : FormatFloat(d));
                break;
            case string s: AppendJsonString(text, s); break;
            case List<object?> list:
                AppendJsonContainer(text, '[', ']', list.Count, indent, depth, i => AppendJson(text, list[i], indent, sortKeys, depth + 1));
                break;
            case JinjaDict dict:
                var pairs = sortKeys ? dict.OrderBy(p => p.Key, StringComparer.Ordinal).ToList() : dict.ToList();
                AppendJsonContainer(text, '{', '}', pairs.Count, indent, depth, i =>
                {
                    AppendJsonString(text, pairs[i].Key);
                    text.Append(": ");
                    AppendJson(text, pairs[i].Value, indent, sortKeys, depth + 1);
                });
                break;
            case JinjaNamespace ns: AppendJson(text, ns.Values, indent, sortKeys, depth); break;
            default: throw new TemplateRenderException($"Object of type {TypeName(value)} is not JSON serializable.");
        }
    }

    private static void AppendJsonContainer(StringBuilder text, char open, char close, int count, int? indent, int depth, Action<int> item)
    {
        text.Append(open);
        if (count == 0)
        {
            text.Append(close);
            return;
        }

        for (var i = 0; i < count; i++)
        {
            if (indent is { } width)
            {
                text.Append(i > 0 ? ",\n" : "\n").Append(' ', width * (depth + 1));
            }
            else if (i > 0)
            {
                text.Append(", ");
            }

            item(i);
        }

        if (indent is { } w)
        {
            text.Append('\n').Append(' ', w * depth);
        }

        text.Append(close);
    }

    private static void AppendJsonString(StringBuilder text, string s)
    {
        text.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case '\b': text.Append("\\b"); break;
                case '\f': text.Append("\\f"); break;
                case < ' ': text.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)); break;
                default: text.Append(c); break;
            }
        }

        text.Append('"');
    }
}

/// <summary>A name or key that does not exist. Prints as nothing, iterates as empty, is falsy; using it as an object fails.</summary>
internal sealed class JinjaUndefined(string name)
{
    public string Name { get; } = name;
}

/// <summary>A mapping with string keys that keeps insertion order (Python dicts do).</summary>
internal sealed class JinjaDict : OrderedDictionary<string, object?>
{
    public JinjaDict()
        : base(StringComparer.Ordinal)
    {
    }
}

/// <summary>The object <c>namespace()</c> makes: attributes that a <c>set</c> inside a loop can change.</summary>
internal sealed class JinjaNamespace
{
    public JinjaDict Values { get; } = [];
}

/// <summary>A function the template can call: a built-in, a macro, <c>loop.cycle</c>, a bound string method.</summary>
internal sealed class JinjaCallable(string name, Func<List<object?>, Dictionary<string, object?>, object?> invoke)
{
    public string Name { get; } = name;

    public object? Invoke(List<object?> positional, Dictionary<string, object?> named) => invoke(positional, named);
}
