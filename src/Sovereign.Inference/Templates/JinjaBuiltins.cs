using System.Globalization;
using System.Text;

namespace Sovereign.Inference.Templates;

/// <summary>Filters, tests, attribute and item access, operators, and string/dict methods, with Python's semantics.</summary>
internal static class JinjaBuiltins
{
    private static readonly HashSet<string> Filters =
    [
        "tojson", "trim", "length", "count", "items", "upper", "lower", "capitalize", "title", "default", "d", "join", "replace",
        "first", "last", "string", "int", "float", "list", "selectattr", "rejectattr", "select", "reject", "map", "safe", "e",
        "escape", "abs", "round", "sort", "unique", "reverse", "dictsort", "indent", "sum", "min", "max", "wordcount", "batch",
    ];

    private static readonly HashSet<string> Tests =
    [
        "defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "true", "false", "mapping", "iterable",
        "sequence", "callable", "even", "odd", "divisibleby", "equalto", "eq", "==", "ne", "!=", "lt", "<", "gt", ">", "le", "<=",
        "ge", ">=", "in", "sameas", "lower", "upper",
    ];

    public static bool HasFilter(string name) => Filters.Contains(name);

    public static bool HasTest(string name) => Tests.Contains(name);

    /// <summary>The names every template sees, besides the caller's variables.</summary>
    public static Dictionary<string, object?> Globals(TimeProvider time) => new(StringComparer.Ordinal)
    {
        ["range"] = new JinjaCallable("range", (args, _) => Range(args)),
        ["namespace"] = new JinjaCallable("namespace", (args, named) =>
        {
            var ns = new JinjaNamespace();
            if (args.Count > 0 && args[0] is JinjaDict initial)
            {
                foreach (var (key, value) in initial)
                {
                    ns.Values[key] = value;
                }
            }

            foreach (var (key, value) in named)
            {
                ns.Values[key] = value;
            }

            return ns;
        }),
        ["dict"] = new JinjaCallable("dict", (_, named) =>
        {
            var dict = new JinjaDict();
            foreach (var (key, value) in named)
            {
                dict[key] = value;
            }

            return dict;
        }),
        ["raise_exception"] = new JinjaCallable("raise_exception", (args, _) =>
            throw new TemplateRaisedException(args.Count > 0 ? JinjaValues.ToText(args[0]) : "The chat template refused the input.")),
        ["strftime_now"] = new JinjaCallable("strftime_now", (args, _) =>
            Strftime(time.GetLocalNow().DateTime, args.Count > 0 && args[0] is string format ? format : throw new TemplateRenderException("strftime_now needs a format string."))),
    };

    private static List<object?> Range(List<object?> args)
    {
        long start = 0, stop, step = 1;
        switch (args.Count)
        {
            case 1: stop = Integer(args[0], "range"); break;
            case 2: start = Integer(args[0], "range"); stop = Integer(args[1], "range"); break;
            case 3: start = Integer(args[0], "range"); stop = Integer(args[1], "range"); step = Integer(args[2], "range"); break;
            default: throw new TemplateRenderException("range takes 1 to 3 arguments.");
        }

        if (step == 0)
        {
            throw new TemplateRenderException("range's step must not be zero.");
        }

        var count = step > 0 ? Math.Max(0, (stop - start + step - 1) / step) : Math.Max(0, (start - stop - step - 1) / -step);
        if (count > 100_000)
        {
            throw new TemplateLimitException("range is limited to 100000 items.");
        }

        var items = new List<object?>((int)count);
        for (var i = 0L; i < count; i++)
        {
            items.Add(start + (i * step));
        }

        return items;
    }

    private static long Integer(object? value, string what) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new TemplateRenderException($"{what} expects an integer, got {JinjaValues.TypeName(value)}."),
    };

    /// <summary>Python's <c>strftime</c> for the directives chat templates use.</summary>
    public static string Strftime(DateTime time, string format)
    {
        var text = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                text.Append(format[i]);
                continue;
            }

            var c = format[++i];
            var culture = CultureInfo.InvariantCulture;
            text.Append(c switch
            {
                'd' => time.ToString("dd", culture),
                'm' => time.ToString("MM", culture),
                'Y' => time.ToString("yyyy", culture),
                'y' => time.ToString("yy", culture),
                'b' => time.ToString("MMM", culture),
                'B' => time.ToString("MMMM", culture),
                'a' => time.ToString("ddd", culture),
                'A' => time.ToString("dddd", culture),
                'H' => time.ToString("HH", culture),
                'I' => time.ToString("hh", culture),
                'M' => time.ToString("mm", culture),
                'S' => time.ToString("ss", culture),
                'p' => time.Hour < 12 ? "AM" : "PM",
                'j' => time.DayOfYear.ToString("000", culture),
                'e' => time.Day.ToString(culture).PadLeft(2),
                '-' when i + 1 < format.Length && format[i + 1] == 'd' => Advance(ref i, time.Day.ToString(culture)),
                '%' => "%",
                _ => "%" + c,
            });
        }

        return text.ToString();
    }

    private static string Advance(ref int i, string value)
    {
        i++;
        return value;
    }

    public static List<object?> Iterate(object? value) => value switch
    {
        List<object?> list => [.. list],
        JinjaDict dict => [.. dict.Keys],
        string s => [.. s.EnumerateRunes().Select(r => (object?)r.ToString())],
        JinjaUndefined => [],
        _ => throw new TemplateRenderException($"'{JinjaValues.TypeName(value)}' object is not iterable."),
    };

    public static object? GetAttribute(object? target, string name, string description)
    {
        switch (target)
        {
            case JinjaUndefined undefined:
                throw new TemplateRenderException($"'{undefined.Name}' is undefined (reading '.{name}' of {description}).");
            case null:
                throw new TemplateRenderException($"'{description}' is None (reading '.{name}').");
            case JinjaDict dict:
                return DictMethod(dict, name) ?? (dict.TryGetValue(name, out var value) ? value : new JinjaUndefined(description + "." + name));
            case JinjaNamespace ns:
                return ns.Values.TryGetValue(name, out var attribute) ? attribute : new JinjaUndefined(description + "." + name);
            case string s:
                return (object?)StringMethod(s, name) ?? new JinjaUndefined(description + "." + name);
            case List<object?> list when int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var index):
                return index < list.Count ? list[index] : new JinjaUndefined(description + "." + name);
            default:
                return new JinjaUndefined(description + "." + name);
        }
    }

    /// <summary>Item access. Error texts name the template's expressions, never the values (they may be content).</summary>
    public static object? GetItem(object? target, object? key, string description)
    {
        switch (target)
        {
            case JinjaUndefined undefined:
                throw new TemplateRenderException($"'{undefined.Name}' is undefined (indexing {description}).");
            case null:
                throw new TemplateRenderException($"'{description}' is None (indexing it).");
            case JinjaDict dict:
                return key is string k && dict.TryGetValue(k, out var value) ? value
                    : key is string name && DictMethod(dict, name) is { } method ? method
                    : new JinjaUndefined(description + "[...]");
            case JinjaNamespace ns:
                return key is string attribute && ns.Values.TryGetValue(attribute, out var item) ? item : new JinjaUndefined(description);
            case List<object?> list when key is long or bool:
                var i = Integer(key, "index");
                i = i < 0 ? i + list.Count : i;
                return i >= 0 && i < list.Count ? list[(int)i] : new JinjaUndefined(description + "[" + key + "]");
            case string s when key is long or bool:
                var j = Integer(key, "index");
                j = j < 0 ? j + s.Length : j;
                return j >= 0 && j < s.Length ? s[(int)j].ToString() : new JinjaUndefined(description + "[" + key + "]");
            case string s when key is string methodName:
                return (object?)StringMethod(s, methodName) ?? new JinjaUndefined(description + "." + methodName);
            default:
                return new JinjaUndefined(description);
        }
    }

    /// <summary>Python slicing <c>[start:stop:step]</c> of a list or a string.</summary>
    public static object? Slice(object? target, object? start, object? stop, object? step)
    {
        var length = target switch
        {
            List<object?> list => list.Count,
            string s => s.Length,
            _ => throw new TemplateRenderException($"'{JinjaValues.TypeName(target)}' object cannot be sliced."),
        };
        var by = step is null ? 1 : Integer(step, "slice step");
        if (by == 0)
        {
            throw new TemplateRenderException("slice step cannot be zero.");
        }

        long Clamp(object? bound, long whenMissing)
        {
            if (bound is null)
            {
                return whenMissing;
            }

            var value = Integer(bound, "slice index");
            if (value < 0)
            {
                value += length;
            }

            return by > 0 ? Math.Clamp(value, 0, length) : Math.Clamp(value, -1, length - 1);
        }

        var from = Clamp(start, by > 0 ? 0 : length - 1);
        var to = Clamp(stop, by > 0 ? length : -1);
        var indexes = new List<int>();
        for (var i = from; by > 0 ? i < to : i > to; i += by)
        {
            indexes.Add((int)i);
        }

        return target is string text
            ? string.Concat(indexes.Select(i => text[i]))
            : indexes.Select(i => ((List<object?>)target!)[i]).ToList();
    }

    private static JinjaCallable? DictMethod(JinjaDict dict, string name) => name switch
    {
        "items" => new JinjaCallable("items", (_, _) => Items(dict)),
        "keys" => new JinjaCallable("keys", (_, _) => dict.Keys.Select(k => (object?)k).ToList()),
        "values" => new JinjaCallable("values", (_, _) => dict.Values.ToList()),
        "get" => new JinjaCallable("get", (args, _) => args.Count > 0 && args[0] is string key && dict.TryGetValue(key, out var value)
            ? value
            : args.Count > 1 ? args[1] : null),
        _ => null,
    };

    private static List<object?> Items(JinjaDict dict) => [.. dict.Select(p => (object?)new List<object?> { p.Key, p.Value })];

    private static JinjaCallable? StringMethod(string s, string name) => name switch
    {
        "strip" => new JinjaCallable(name, (args, _) => Strip(s, args, true, true)),
        "lstrip" => new JinjaCallable(name, (args, _) => Strip(s, args, true, false)),
        "rstrip" => new JinjaCallable(name, (args, _) => Strip(s, args, false, true)),
        "startswith" => new JinjaCallable(name, (args, _) => Prefixes(args, name).Any(p => s.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => new JinjaCallable(name, (args, _) => Prefixes(args, name).Any(p => s.EndsWith(p, StringComparison.Ordinal))),
        "split" => new JinjaCallable(name, (args, named) => Split(s, args.Count > 0 ? args[0] : named.GetValueOrDefault("sep"),
            args.Count > 1 ? args[1] : named.GetValueOrDefault("maxsplit", -1L))),
        "upper" => new JinjaCallable(name, (_, _) => s.ToUpperInvariant()),
        "lower" => new JinjaCallable(name, (_, _) => s.ToLowerInvariant()),
        "title" => new JinjaCallable(name, (_, _) => Title(s)),
        "capitalize" => new JinjaCallable(name, (_, _) => Capitalize(s)),
        "replace" => new JinjaCallable(name, (args, _) => Replace(s, args)),
        "find" => new JinjaCallable(name, (args, _) => (long)s.IndexOf(Text(args, 0, name), StringComparison.Ordinal)),
        "count" => new JinjaCallable(name, (args, _) => (long)CountOf(s, Text(args, 0, name))),
        "join" => new JinjaCallable(name, (args, _) => string.Join(s, Iterate(args.Count > 0 ? args[0] : null).Select(JinjaValues.ToText))),
        "splitlines" => new JinjaCallable(name, (_, _) => s.Split('\n').Select(l => (object?)l.TrimEnd('\r')).ToList()),
        "isdigit" => new JinjaCallable(name, (_, _) => s.Length > 0 && s.All(char.IsDigit)),
        _ => null,
    };

    private static string Text(List<object?> args, int index, string method) =>
        index < args.Count && args[index] is string s ? s : throw new TemplateRenderException($"{method} expects a string argument.");

    private static IEnumerable<string> Prefixes(List<object?> args, string method) => args.Count > 0 && args[0] is List<object?> many
        ? many.Select(p => p as string ?? throw new TemplateRenderException($"{method} expects strings."))
        : [Text(args, 0, method)];

    private static string Strip(string s, List<object?> args, bool left, bool right)
    {
        if (args.Count > 0 && args[0] is string chars)
        {
            var set = chars.ToCharArray();
            return left && right ? s.Trim(set) : left ? s.TrimStart(set) : s.TrimEnd(set);
        }

        return left && right ? s.Trim() : left ? s.TrimStart() : s.TrimEnd();
    }

    private static List<object?> Split(string s, object? separator, object? maxSplit)
    {
        var max = maxSplit is long m ? m : -1;
        if (separator is null or JinjaUndefined)
        {
            // Python: runs of whitespace separate, and leading/trailing whitespace yields no empty items.
            var words = new List<object?>();
            var i = 0;
            while (i < s.Length)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i]))
                {
                    i++;
                }

                if (i >= s.Length)
                {
                    break;
                }

                if (max >= 0 && words.Count == max)
                {
                    words.Add(s[i..].TrimEnd());
                    break;
                }

                var start = i;
                while (i < s.Length && !char.IsWhiteSpace(s[i]))
                {
                    i++;
                }

                words.Add(s[start..i]);
            }

            return words;
        }

        var sep = separator as string ?? throw new TemplateRenderException("split expects a string separator.");
        if (sep.Length == 0)
        {
            throw new TemplateRenderException("empty separator");
        }

        var parts = max >= 0 ? s.Split(sep, (int)Math.Min(max + 1, int.MaxValue)) : s.Split(sep);
        return [.. parts.Select(p => (object?)p)];
    }

    private static string Title(string s)
    {
        var text = new StringBuilder(s.Length);
        var previousIsLetter = false;
        foreach (var c in s)
        {
            text.Append(previousIsLetter ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousIsLetter = char.IsLetter(c);
        }

        return text.ToString();
    }

    private static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    private static string Replace(string s, List<object?> args)
    {
        var old = Text(args, 0, "replace");
        var replacement = Text(args, 1, "replace");
        var count = args.Count > 2 ? Integer(args[2], "replace") : -1;
        if (count < 0)
        {
            return old.Length == 0 ? string.Join(replacement, ["", .. s.Select(c => c.ToString()), ""]) : s.Replace(old, replacement, StringComparison.Ordinal);
        }

        var text = new StringBuilder();
        var pos = 0;
        for (var done = 0; done < count && old.Length > 0; done++)
        {
            var at = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (at < 0)
            {
                break;
            }

            text.Append(s, pos, at - pos).Append(replacement);
            pos = at + old.Length;
        }

        return text.Append(s, pos, s.Length - pos).ToString();
    }

    private static int CountOf(string s, string part)
    {
        if (part.Length == 0)
        {
            return s.Length + 1;
        }

        var count = 0;
        for (var at = s.IndexOf(part, StringComparison.Ordinal); at >= 0; at = s.IndexOf(part, at + part.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    public static object? BinaryOperation(string op, object? a, object? b)
    {
        switch (op)
        {
            case "==": return JinjaValues.AreEqual(a, b);
            case "!=": return !JinjaValues.AreEqual(a, b);
            case "<" or ">" or "<=" or ">=":
                var order = Compare(a, b);
                return op switch { "<" => order < 0, ">" => order > 0, "<=" => order <= 0, _ => order >= 0 };
            case "in": return Contains(b, a);
            case "not in": return !Contains(b, a);
            case "~": return JinjaValues.ToText(a) + JinjaValues.ToText(b);
        }

        switch (op, a, b)
        {
            case ("+", string x, string y): return x + y;
            case ("+", List<object?> x, List<object?> y): return x.Concat(y).ToList();
            case ("*", string x, long n): return n <= 0 ? "" : Repeat(x, n);
            case ("*", List<object?> x, long n): return Enumerable.Repeat(x, (int)Math.Clamp(n, 0, 100_000)).SelectMany(l => l).ToList();
        }

        if (!JinjaValues.IsNumber(a) || !JinjaValues.IsNumber(b))
        {
            throw new TemplateRenderException($"Unsupported operand types for {op}: {JinjaValues.TypeName(a)} and {JinjaValues.TypeName(b)}.");
        }

        if (a is not double && b is not double && op is not "/" and not "**")
        {
            var x = Integer(a, op);
            var y = Integer(b, op);
            return op switch
            {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "//" => y == 0 ? throw new TemplateRenderException("integer division by zero") : FloorDiv(x, y),
                "%" => y == 0 ? throw new TemplateRenderException("integer modulo by zero") : x - (y * FloorDiv(x, y)),
                _ => throw new TemplateRenderException($"Unknown operator {op}."),
            };
        }

        var p = JinjaValues.ToDouble(a);
        var q = JinjaValues.ToDouble(b);
        return op switch
        {
            "+" => p + q,
            "-" => p - q,
            "*" => p * q,
            "/" => q == 0 ? throw new TemplateRenderException("division by zero") : p / q,
            "//" => q == 0 ? throw new TemplateRenderException("float floor division by zero") : Math.Floor(p / q),
            "%" => q == 0 ? throw new TemplateRenderException("float modulo") : p - (q * Math.Floor(p / q)),
            "**" when a is long x && b is long y && y >= 0 => (object)(long)Math.Pow(x, y),
            "**" => Math.Pow(p, q),
            _ => throw new TemplateRenderException($"Unknown operator {op}."),
        };
    }

    private static string Repeat(string s, long n)
    {
        if (s.Length * n > 1_000_000)
        {
            throw new TemplateLimitException("A repeated string would pass 1000000 characters.");
        }

        return new StringBuilder().Insert(0, s, (int)n).ToString();
    }

    private static long FloorDiv(long x, long y)
    {
        var q = x / y;
        return (x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q;
    }

    private static int Compare(object? a, object? b)
    {
        if (JinjaValues.IsNumber(a) && JinjaValues.IsNumber(b))
        {
            return JinjaValues.ToDouble(a).CompareTo(JinjaValues.ToDouble(b));
        }

        if (a is string x && b is string y)
        {
            return string.CompareOrdinal(x, y);
        }

        if (a is List<object?> l && b is List<object?> m)
        {
            for (var i = 0; i < Math.Min(l.Count, m.Count); i++)
            {
                if (!JinjaValues.AreEqual(l[i], m[i]))
                {
                    return Compare(l[i], m[i]);
                }
            }

            return l.Count.CompareTo(m.Count);
        }

        throw new TemplateRenderException($"'<' not supported between {JinjaValues.TypeName(a)} and {JinjaValues.TypeName(b)}.");
    }

    private static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string part ? s.Contains(part, StringComparison.Ordinal) : throw new TemplateRenderException("'in <string>' requires a string on the left."),
        List<object?> list => list.Any(x => JinjaValues.AreEqual(x, item)),
        JinjaDict dict => item is string key && dict.ContainsKey(key),
        JinjaNamespace ns => item is string key && ns.Values.ContainsKey(key),
        JinjaUndefined u => throw new TemplateRenderException($"'{u.Name}' is undefined (used with 'in')."),
        _ => throw new TemplateRenderException($"Argument of type {JinjaValues.TypeName(container)} is not iterable."),
    };

    public static bool Test(string name, object? value, List<object?> args)
    {
        object? Arg() => args.Count > 0 ? args[0] : throw new TemplateRenderException($"The test '{name}' needs an argument.");
        return name switch
        {
            "defined" => value is not JinjaUndefined,
            "undefined" => value is JinjaUndefined,
            "none" => value is null,
            "string" => value is string,
            "number" => value is long or double,
            "integer" => value is long,
            "float" => value is double,
            "boolean" => value is bool,
            "true" => value is true,
            "false" => value is false,
            "mapping" => value is JinjaDict,
            "iterable" => value is List<object?> or JinjaDict or string,
            "sequence" => value is List<object?> or JinjaDict or string,
            "callable" => value is JinjaCallable,
            "even" => Integer(value, "even") % 2 == 0,
            "odd" => Integer(value, "odd") % 2 != 0,
            "divisibleby" => Integer(Arg(), "divisibleby") is var d && d != 0 && Integer(value, "divisibleby") % d == 0,
            "equalto" or "eq" or "==" => JinjaValues.AreEqual(value, Arg()),
            "ne" or "!=" => !JinjaValues.AreEqual(value, Arg()),
            "lt" or "<" => Compare(value, Arg()) < 0,
            "gt" or ">" => Compare(value, Arg()) > 0,
            "le" or "<=" => Compare(value, Arg()) <= 0,
            "ge" or ">=" => Compare(value, Arg()) >= 0,
            "in" => Contains(Arg(), value),
            "sameas" => value is null ? Arg() is null : value is bool b ? Arg() is bool c && b == c : ReferenceEquals(value, Arg()),
            "lower" => value is string s && s == s.ToLowerInvariant(),
            "upper" => value is string u && u == u.ToUpperInvariant(),
            _ => throw new TemplateRenderException($"Unknown test '{name}'."),
        };
    }

    public static object? Filter(JinjaInterpreter interpreter, string name, object? value, List<object?> args, Dictionary<string, object?> named)
    {
        object? Arg(int index, string key, object? fallback = null) =>
            index < args.Count ? args[index] : named.TryGetValue(key, out var v) ? v : fallback;

        switch (name)
        {
            case "tojson":
                var indent = Arg(0, "indent");
                return JinjaValues.ToJson(value, indent is long width ? (int)width : null, JinjaValues.IsTruthy(Arg(1, "sort_keys", false)));
            case "trim":
                return Arg(0, "chars") is string chars ? JinjaValues.ToText(value).Trim(chars.ToCharArray()) : JinjaValues.ToText(value).Trim();
            case "length" or "count":
                return value switch
                {
                    string s => (long)s.Length,
                    List<object?> list => (long)list.Count,
                    JinjaDict dict => (long)dict.Count,
                    JinjaUndefined => 0L,
                    _ => throw new TemplateRenderException($"object of type '{JinjaValues.TypeName(value)}' has no len()"),
                };
            case "items":
                return value switch
                {
                    JinjaDict dict => Items(dict),
                    JinjaUndefined => new List<object?>(),
                    _ => throw new TemplateRenderException($"Can only get items of a mapping, not {JinjaValues.TypeName(value)}."),
                };
            case "upper": return JinjaValues.ToText(value).ToUpperInvariant();
            case "lower": return JinjaValues.ToText(value).ToLowerInvariant();
            case "capitalize": return Capitalize(JinjaValues.ToText(value));
            case "title": return Title(JinjaValues.ToText(value));
            case "default" or "d":
                var useDefault = value is JinjaUndefined || (JinjaValues.IsTruthy(Arg(1, "boolean", false)) && !JinjaValues.IsTruthy(value));
                return useDefault ? Arg(0, "default_value", "") : value;
            case "join":
                var attribute = Arg(1, "attribute") as string;
                return string.Join(JinjaValues.ToText(Arg(0, "d", "")),
                    Iterate(value).Select(item => JinjaValues.ToText(attribute is null ? item : Path(item, attribute))));
            case "replace":
                return Replace(JinjaValues.ToText(value), args);
            case "first":
                return value switch
                {
                    string s => s.Length > 0 ? s[0].ToString() : new JinjaUndefined("first"),
                    _ => Iterate(value) is { Count: > 0 } items ? items[0] : new JinjaUndefined("first"),
                };
            case "last":
                return value switch
                {
                    string s => s.Length > 0 ? s[^1].ToString() : new JinjaUndefined("last"),
                    _ => Iterate(value) is { Count: > 0 } items ? items[^1] : new JinjaUndefined("last"),
                };
            case "string" or "safe" or "e" or "escape":
                var text = JinjaValues.ToText(value);
                return name is "e" or "escape"
                    ? text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal)
                        .Replace("\"", "&#34;", StringComparison.Ordinal).Replace("'", "&#39;", StringComparison.Ordinal)
                    : text;
            case "int":
                return value switch
                {
                    long l => l,
                    double d => (long)Math.Truncate(d),
                    bool b => b ? 1L : 0L,
                    string s when long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed) => parsed,
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var parsedFloat) => (long)Math.Truncate(parsedFloat),
                    _ => Arg(0, "default", 0L),
                };
            case "float":
                return value switch
                {
                    long or double or bool => JinjaValues.ToDouble(value),
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed) => parsed,
                    _ => Arg(0, "default", 0.0),
                };
            case "list": return Iterate(value);
            case "abs": return value is long l2 ? (object)Math.Abs(l2) : Math.Abs(JinjaValues.ToDouble(value));
            case "round":
                var precision = (int)Integer(Arg(0, "precision", 0L), "round");
                var method = Arg(1, "method", "common") as string;
                var number = JinjaValues.ToDouble(value);
                var factor = Math.Pow(10, precision);
                return method switch
                {
                    "floor" => Math.Floor(number * factor) / factor,
                    "ceil" => Math.Ceiling(number * factor) / factor,
                    _ => Math.Round(number, precision, MidpointRounding.AwayFromZero),
                };
            case "selectattr" or "rejectattr":
                {
                    var attr = Arg(0, "attribute") as string ?? throw new TemplateRenderException($"{name} needs an attribute name.");
                    var keep = name == "selectattr";
                    return Iterate(value).Where(item => Select(Path(item, attr), args.Skip(1).ToList()) == keep).ToList();
                }

            case "select" or "reject":
                {
                    var keep = name == "select";
                    return Iterate(value).Where(item => Select(item, args) == keep).ToList();
                }

            case "map":
                if (named.TryGetValue("attribute", out var mapAttribute) && mapAttribute is string path)
                {
                    var fallback = named.GetValueOrDefault("default");
                    return Iterate(value).Select(item => Path(item, path) is JinjaUndefined && named.ContainsKey("default") ? fallback : Path(item, path)).ToList();
                }

                if (args.Count > 0 && args[0] is string filter && HasFilter(filter))
                {
                    return Iterate(value).Select(item => Filter(interpreter, filter, item, args.Skip(1).ToList(), [])).ToList();
                }

                throw new TemplateRenderException("map needs attribute=... or a filter name.");
            case "sort":
                {
                    var reverse = JinjaValues.IsTruthy(Arg(0, "reverse", false));
                    var sortAttribute = Arg(2, "attribute") as string;
                    var items = Iterate(value);
                    var comparer = Comparer<object?>.Create((x, y) => Compare(sortAttribute is null ? x : Path(x, sortAttribute), sortAttribute is null ? y : Path(y, sortAttribute)));
                    var sorted = items.Order(comparer).ToList();
                    if (reverse)
                    {
                        sorted.Reverse();
                    }

                    return sorted;
                }

            case "unique":
                {
                    var unique = new List<object?>();
                    foreach (var item in Iterate(value))
                    {
                        if (!unique.Any(u => JinjaValues.AreEqual(u, item)))
                        {
                            unique.Add(item);
                        }
                    }

                    return unique;
                }

            case "reverse":
                if (value is string reversed)
                {
                    var chars2 = reversed.ToCharArray();
                    Array.Reverse(chars2);
                    return new string(chars2);
                }

                var list2 = Iterate(value);
                list2.Reverse();
                return list2;
            case "dictsort":
                return value is JinjaDict toSort
                    ? Items(toSort).OrderBy(p => (string)((List<object?>)p!)[0]!, StringComparer.OrdinalIgnoreCase).ToList()
                    : throw new TemplateRenderException("dictsort needs a mapping.");
            case "indent":
                {
                    var indentWidth = Arg(0, "width", 4L);
                    var pad = indentWidth is string padText ? padText : new string(' ', (int)Integer(indentWidth, "indent"));
                    var first = JinjaValues.IsTruthy(Arg(1, "first", false));
                    var blank = JinjaValues.IsTruthy(Arg(2, "blank", false));
                    var lines = JinjaValues.ToText(value).Split('\n');
                    for (var i = 0; i < lines.Length; i++)
                    {
                        if ((i > 0 || first) && (blank || lines[i].Length > 0))
                        {
                            lines[i] = pad + lines[i];
                        }
                    }

                    return string.Join('\n', lines);
                }

            case "sum":
                {
                    var sumAttribute = Arg(0, "attribute") as string;
                    object? total = Arg(1, "start", 0L);
                    foreach (var item in Iterate(value))
                    {
                        total = BinaryOperation("+", total, sumAttribute is null ? item : Path(item, sumAttribute));
                    }

                    return total;
                }

            case "min" or "max":
                {
                    var items = Iterate(value);
                    if (items.Count == 0)
                    {
                        return new JinjaUndefined(name);
                    }

                    var best = items[0];
                    foreach (var item in items.Skip(1))
                    {
                        var order = Compare(item, best);
                        if (name == "min" ? order < 0 : order > 0)
                        {
                            best = item;
                        }
                    }

                    return best;
                }

            case "wordcount":
                return (long)Split(JinjaValues.ToText(value), null, -1L).Count;
            case "batch":
                {
                    var size = (int)Integer(Arg(0, "linecount"), "batch");
                    if (size <= 0)
                    {
                        throw new TemplateRenderException("batch needs a positive size.");
                    }

                    return Iterate(value).Chunk(size).Select(c => (object?)c.ToList()).ToList();
                }

            default:
                throw new TemplateRenderException($"Unknown filter '{name}'.");
        }
    }

    /// <summary>A dotted attribute path (<c>function.name</c>) or an integer index, as Jinja's attribute filters read it.</summary>
    private static object? Path(object? item, string path)
    {
        foreach (var part in path.Split('.'))
        {
            item = item switch
            {
                JinjaDict dict => dict.TryGetValue(part, out var value) ? value : new JinjaUndefined(part),
                JinjaNamespace ns => ns.Values.TryGetValue(part, out var value) ? value : new JinjaUndefined(part),
                List<object?> list when int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index < list.Count => list[index],
                _ => new JinjaUndefined(part),
            };
        }

        return item;
    }

    /// <summary>select/reject: with no test the value's truth; else the named test with the remaining arguments.</summary>
    private static bool Select(object? value, List<object?> testAndArgs)
    {
        if (testAndArgs.Count == 0)
        {
            return JinjaValues.IsTruthy(value);
        }

        var test = testAndArgs[0] as string ?? throw new TemplateRenderException("The test must be named by a string.");
        return HasTest(test) ? Test(test, value, testAndArgs.Skip(1).ToList()) : throw new TemplateRenderException($"Unknown test '{test}'.");
    }
}
