using System.Globalization;
using System.Text;

namespace Sovereign.Inference.Grammar;

/// <summary>
/// A GBNF grammar parsed into llama.cpp's flat form: every rule is a run of elements, alternatives separated by
/// <see cref="ElementKind.Alt"/> and closed by <see cref="ElementKind.End"/>; repetitions are rewritten into helper
/// rules exactly as llama.cpp's parser does (<c>S{m,n}</c> is m copies of S, then <c>S'(n-m)</c> with
/// <c>S'(k) ::= S S'(k-1) |</c>), so that a tail position never grows a parse stack.
/// </summary>
internal sealed class GbnfRules
{
    private readonly List<ElementKind> _kinds = [];
    private readonly List<int> _values = [];

    private GbnfRules()
    {
    }

    /// <summary>Element kind per element index.</summary>
    public ElementKind[] Kinds { get; private set; } = [];

    /// <summary>Per element: the rule id of a <see cref="ElementKind.RuleRef"/>, the class id of a <see cref="ElementKind.Char"/>.</summary>
    public int[] Values { get; private set; } = [];

    /// <summary>Index of each rule's first element.</summary>
    public int[] RuleStarts { get; private set; } = [];

    /// <summary>The character classes the <see cref="ElementKind.Char"/> elements test.</summary>
    public CharClass[] Classes { get; private set; } = [];

    /// <summary>The start rule's id.</summary>
    public int Root { get; private set; }

    /// <summary>Whether the element at <paramref name="position"/> closes an alternative.</summary>
    public bool IsEndOfSequence(int position) => Kinds[position] is ElementKind.End or ElementKind.Alt;

    /// <summary>Parses <paramref name="text"/>; throws <see cref="FormatException"/> on syntax this parser does not know.</summary>
    public static GbnfRules Parse(string text, string root)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parser = new Parser(text);
        parser.ParseAll();
        if (!parser.Ids.TryGetValue(root, out var rootId))
        {
            throw new FormatException($"The grammar has no rule '{root}'.");
        }

        foreach (var (name, id) in parser.Ids)
        {
            if (id >= parser.Rules.Count || parser.Rules[id] is null)
            {
                throw new FormatException($"The grammar uses rule '{name}' but does not define it.");
            }
        }

        var rules = new GbnfRules { Root = rootId };
        var starts = new int[parser.Rules.Count];
        for (var id = 0; id < parser.Rules.Count; id++)
        {
            starts[id] = rules._kinds.Count;
            var alternatives = parser.Rules[id]!;
            for (var a = 0; a < alternatives.Count; a++)
            {
                foreach (var item in alternatives[a])
                {
                    rules._kinds.Add(item.IsRule ? ElementKind.RuleRef : ElementKind.Char);
                    rules._values.Add(item.Value);
                }

                rules._kinds.Add(a == alternatives.Count - 1 ? ElementKind.End : ElementKind.Alt);
                rules._values.Add(0);
            }
        }

        rules.Kinds = [.. rules._kinds];
        rules.Values = [.. rules._values];
        rules.RuleStarts = starts;
        rules.Classes = [.. parser.Classes];
        return rules;
    }

    private readonly record struct Item(bool IsRule, int Value);

    private sealed class Parser(string text)
    {
        // llama.cpp's MAX_REPETITION_THRESHOLD: a grammar that repeats more cannot be parsed by llama.cpp either, so
        // it must never reach the engine (see GrammarMatcher.For's callers).
        private const int MaxRepetitions = JsonSchemaGrammarCompiler.MaxRepetitions;

        private int _pos;

        public Dictionary<string, int> Ids { get; } = new(StringComparer.Ordinal);

        public List<List<List<Item>>?> Rules { get; } = [];

        public List<CharClass> Classes { get; } = [];

        public void ParseAll()
        {
            SkipSpace(newlines: true);
            while (_pos < text.Length)
            {
                var name = ParseName();
                SkipSpace(newlines: false);
                if (!text.AsSpan(_pos).StartsWith("::=", StringComparison.Ordinal))
                {
                    throw Error("expected '::='");
                }

                _pos += 3;
                SkipSpace(newlines: true);
                var id = IdOf(name);
                Define(id, ParseAlternatives(name, nested: false));
                if (_pos < text.Length && text[_pos] is not ('\n' or '\r'))
                {
                    throw Error("expected the end of the rule");
                }

                SkipSpace(newlines: true);
            }
        }

        private List<List<Item>> ParseAlternatives(string ruleName, bool nested)
        {
            var alternatives = new List<List<Item>> { ParseSequence(ruleName, nested) };
            while (_pos < text.Length && text[_pos] == '|')
            {
                _pos++;
                SkipSpace(newlines: true);
                alternatives.Add(ParseSequence(ruleName, nested));
            }

            return alternatives;
        }

        private List<Item> ParseSequence(string ruleName, bool nested)
        {
            var items = new List<Item>();
            var lastSymbolStart = items.Count;
            while (_pos < text.Length)
            {
                var c = text[_pos];
                if (c == '"')
                {
                    _pos++;
                    lastSymbolStart = items.Count;
                    while (_pos < text.Length && text[_pos] != '"')
                    {
                        var rune = ParseChar();
                        items.Add(new Item(false, AddClass(new CharClass([(rune, rune)], negated: false, any: false))));
                    }

                    Expect('"');
                }
                else if (c == '[')
                {
                    _pos++;
                    lastSymbolStart = items.Count;
                    var negated = _pos < text.Length && text[_pos] == '^';
                    if (negated)
                    {
                        _pos++;
                    }

                    var ranges = new List<(int, int)>();
                    while (_pos < text.Length && text[_pos] != ']')
                    {
                        var low = ParseChar();
                        var high = low;
                        if (_pos + 1 < text.Length && text[_pos] == '-' && text[_pos + 1] != ']')
                        {
                            _pos++;
                            high = ParseChar();
                        }

                        ranges.Add((low, high));
                    }

                    Expect(']');
                    items.Add(new Item(false, AddClass(new CharClass([.. ranges], negated, any: false))));
                }
                else if (c == '.')
                {
                    _pos++;
                    lastSymbolStart = items.Count;
                    items.Add(new Item(false, AddClass(new CharClass([], negated: false, any: true))));
                }
                else if (IsNameChar(c))
                {
                    lastSymbolStart = items.Count;
                    items.Add(new Item(true, IdOf(ParseName())));
                }
                else if (c == '(')
                {
                    _pos++;
                    SkipSpace(newlines: true);
                    lastSymbolStart = items.Count;
                    var group = NewId(ruleName);
                    Define(group, ParseAlternatives(ruleName, nested: true));
                    Expect(')');
                    items.Add(new Item(true, group));
                }
                else if (c is '*' or '+' or '?')
                {
                    _pos++;
                    Repeat(items, lastSymbolStart, ruleName, c == '+' ? 1 : 0, c == '?' ? 1 : -1);
                }
                else if (c == '{')
                {
                    _pos++;
                    SkipSpace(newlines: false);
                    var min = ParseInt();
                    SkipSpace(newlines: false);
                    var max = min;
                    if (_pos < text.Length && text[_pos] == ',')
                    {
                        _pos++;
                        SkipSpace(newlines: false);
                        max = _pos < text.Length && char.IsAsciiDigit(text[_pos]) ? ParseInt() : -1;
                        SkipSpace(newlines: false);
                    }

                    Expect('}');
                    if (max >= 0 && max < min)
                    {
                        throw Error("a repetition's maximum is below its minimum");
                    }

                    if (Math.Max(min, max) > MaxRepetitions)
                    {
                        throw Error("a repetition count is too large");
                    }

                    Repeat(items, lastSymbolStart, ruleName, min, max);
                }
                else
                {
                    break;
                }

                SkipSpace(newlines: nested);
            }

            return items;
        }

        /// <summary>llama.cpp's rewrite of <c>S{min,max}</c> (max -1: unbounded).</summary>
        private void Repeat(List<Item> items, int lastSymbolStart, string ruleName, int min, int max)
        {
            if (lastSymbolStart == items.Count)
            {
                throw Error("a repetition with nothing before it");
            }

            var symbol = items.GetRange(lastSymbolStart, items.Count - lastSymbolStart);
            items.RemoveRange(lastSymbolStart, items.Count - lastSymbolStart);
            for (var i = 0; i < min; i++)
            {
                items.AddRange(symbol);
            }

            var optional = max < 0 ? 1 : max - min;
            var lastRecursive = -1;
            for (var i = 0; i < optional; i++)
            {
                var id = NewId(ruleName);
                var body = new List<Item>(symbol);
                if (i > 0 || max < 0)
                {
                    body.Add(new Item(true, max < 0 ? id : lastRecursive));
                }

                Define(id, [body, []]);
                lastRecursive = id;
            }

            if (optional > 0)
            {
                items.Add(new Item(true, lastRecursive));
            }
        }

        private int ParseChar()
        {
            if (_pos >= text.Length)
            {
                throw Error("unexpected end of grammar");
            }

            var c = text[_pos];
            if (c != '\\')
            {
                if (char.IsHighSurrogate(c) && _pos + 1 < text.Length && char.IsLowSurrogate(text[_pos + 1]))
                {
                    _pos += 2;
                    return char.ConvertToUtf32(c, text[_pos - 1]);
                }

                _pos++;
                return c;
            }

            if (_pos + 1 >= text.Length)
            {
                throw Error("unexpected end of grammar");
            }

            var escape = text[_pos + 1];
            _pos += 2;
            return escape switch
            {
                'x' => ParseHex(2),
                'u' => ParseHex(4),
                'U' => ParseHex(8),
                't' => '\t',
                'r' => '\r',
                'n' => '\n',
                '\\' or '"' or '[' or ']' or '-' => escape,
                _ => throw Error($"unknown escape '\\{escape}'"),
            };
        }

        private int ParseHex(int digits)
        {
            if (_pos + digits > text.Length
                || !int.TryParse(text.AsSpan(_pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value))
            {
                throw Error("bad hexadecimal escape");
            }

            _pos += digits;
            return value;
        }

        private int ParseInt()
        {
            var start = _pos;
            while (_pos < text.Length && char.IsAsciiDigit(text[_pos]))
            {
                _pos++;
            }

            return _pos > start ? int.Parse(text.AsSpan(start, _pos - start), CultureInfo.InvariantCulture) : throw Error("expected a number");
        }

        private string ParseName()
        {
            var start = _pos;
            while (_pos < text.Length && IsNameChar(text[_pos]))
            {
                _pos++;
            }

            return _pos > start ? text[start.._pos] : throw Error("expected a rule name");
        }

        private static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '_';

        private void SkipSpace(bool newlines)
        {
            while (_pos < text.Length)
            {
                var c = text[_pos];
                if (c == '#')
                {
                    while (_pos < text.Length && text[_pos] is not ('\n' or '\r'))
                    {
                        _pos++;
                    }
                }
                else if (c is ' ' or '\t' || (newlines && c is '\n' or '\r'))
                {
                    _pos++;
                }
                else
                {
                    return;
                }
            }
        }

        private void Expect(char c)
        {
            if (_pos >= text.Length || text[_pos] != c)
            {
                throw Error($"expected '{c}'");
            }

            _pos++;
        }

        private int IdOf(string name)
        {
            if (!Ids.TryGetValue(name, out var id))
            {
                id = Rules.Count;
                Ids[name] = id;
                Rules.Add(null);
            }

            return id;
        }

        private int NewId(string baseName)
        {
            var id = Rules.Count;
            Ids[baseName + "#" + id.ToString(CultureInfo.InvariantCulture)] = id;
            Rules.Add(null);
            return id;
        }

        private void Define(int id, List<List<Item>> alternatives)
        {
            if (Rules[id] is not null)
            {
                throw Error("a rule is defined twice");
            }

            Rules[id] = alternatives;
        }

        private int AddClass(CharClass charClass)
        {
            Classes.Add(charClass);
            return Classes.Count - 1;
        }

        private FormatException Error(string what) =>
            new(new StringBuilder("GBNF: ").Append(what).Append(" at offset ").Append(_pos.ToString(CultureInfo.InvariantCulture)).ToString());
    }
}

/// <summary>What a grammar element is.</summary>
internal enum ElementKind : byte
{
    /// <summary>Closes a rule's last alternative.</summary>
    End,

    /// <summary>Closes an alternative that another follows.</summary>
    Alt,

    /// <summary>A reference to a rule.</summary>
    RuleRef,

    /// <summary>One code point out of a character class.</summary>
    Char,
}

/// <summary>A set of code points: inclusive ranges, possibly negated; or any code point.</summary>
internal sealed class CharClass
{
    private readonly (int Low, int High)[] _ranges;
    private readonly ulong _ascii0;
    private readonly ulong _ascii1;

    public CharClass((int Low, int High)[] ranges, bool negated, bool any)
    {
        _ranges = ranges;
        Negated = negated;
        Any = any;
        for (var c = 0; c < 128; c++)
        {
            if (MatchesSlow(c))
            {
                if (c < 64)
                {
                    _ascii0 |= 1UL << c;
                }
                else
                {
                    _ascii1 |= 1UL << (c - 64);
                }
            }
        }
    }

    public bool Negated { get; }

    public bool Any { get; }

    /// <summary>Whether <paramref name="codePoint"/> is in the class (llama.cpp's <c>llama_grammar_match_char</c>).</summary>
    public bool Matches(int codePoint) => codePoint switch
    {
        < 64 => (_ascii0 >> codePoint & 1) != 0,
        < 128 => (_ascii1 >> (codePoint - 64) & 1) != 0,
        _ => MatchesSlow(codePoint),
    };

    /// <summary>
    /// llama.cpp's <c>llama_grammar_match_partial_char</c>: whether a code point in [low, high] (the completions of an
    /// unfinished UTF-8 sequence) may match; a negated class answers no as soon as one of its ranges meets the span.
    /// </summary>
    public bool MatchesPartial(int low, int high)
    {
        if (Any)
        {
            return true;
        }

        foreach (var (rangeLow, rangeHigh) in _ranges)
        {
            if (rangeLow <= high && low <= rangeHigh)
            {
                return !Negated;
            }
        }

        return Negated;
    }

    /// <summary>Whether some code point in [low, high] certainly may match (used to prune inside a token).</summary>
    public bool MayMatchSome(int low, int high) => Any || Negated || MatchesPartial(low, high);

    private bool MatchesSlow(int codePoint)
    {
        if (Any)
        {
            return true;
        }

        foreach (var (low, high) in _ranges)
        {
            if (low <= codePoint && codePoint <= high)
            {
                return !Negated;
            }
        }

        return Negated;
    }
}
