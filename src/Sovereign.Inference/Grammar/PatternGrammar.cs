using System.Globalization;
using System.Text;

namespace Sovereign.Inference.Grammar;

/// <summary>
/// Turns a JSON Schema <c>pattern</c> (an ECMA-262 regular expression) into GBNF for the characters between a JSON
/// string's quotes, JSON-escaped as the grammar emits them. Every string the grammar produces matches the pattern as a
/// whole, so it also matches where JSON Schema searches (a pattern is not anchored unless it says <c>^</c>/<c>$</c>):
/// an unanchored pattern yields a subset of what it accepts, never a looser one.
/// </summary>
/// <remarks>
/// Supported: literals and escapes (<c>\.</c>, <c>\t</c>, <c>\xHH</c>, <c>\uHHHH</c>), <c>.</c>, <c>\d \w \s</c> and their
/// negations, classes with ranges and negation, groups (capturing, <c>(?:)</c>, named), alternation, the quantifiers
/// <c>? * + {n} {n,} {n,m}</c> (lazy or not), and <c>^</c>/<c>$</c> at the pattern's ends. Refused, naming the construct:
/// backreferences, lookarounds, word boundaries, Unicode property escapes and anchors elsewhere. Generated characters
/// are a subset of each class: the Basic Multilingual Plane, no control characters other than tab, newline and carriage
/// return (sent as JSON escapes), and <c>\s</c> as space, tab, newline and carriage return.
/// </remarks>
internal sealed class PatternGrammar
{
    private const int MaxPatternLength = 1000;
    private const int MaxNesting = 32;

    // Parts that may be skipped ('?', '*', '{0,n}', '(a|)'): from one place the grammar engines expand every run of them at
    // once, so the work per token grows with the cube of their number (64 in a row: about 5 ms a token on a 2-core
    // machine; 256: 320 ms, for the decode thread every tenant of the model shares).
    private const int MaxOptionalParts = 64;

    // Places where one part may go on or the next begin ('a*a*', '.*x'): a string splits there in as many ways as the
    // run is long, and llama.cpp keeps a stack per split: 8 in a row ('a*' 8 times) cost 20 ms a token, 32 cost 250 ms.
    private const int MaxAmbiguousJoins = 4;
    private const int LastBmp = 0xFFFF;

    private readonly string _pattern;
    private readonly string _path;
    private int _pos;
    private int _depth;
    private int _optionalParts;
    private int _ambiguousJoins;

    private PatternGrammar(string pattern, string path)
    {
        _pattern = pattern;
        _path = path;
    }

    /// <summary>A node of the parsed pattern.</summary>
    internal abstract record Node;

    /// <summary>One character from a set of code-point ranges (inclusive, sorted, disjoint).</summary>
    internal sealed record CharSet(IReadOnlyList<(int Low, int High)> Ranges) : Node;

    internal sealed record Sequence(IReadOnlyList<Node> Items) : Node;

    internal sealed record Alternation(IReadOnlyList<Node> Options) : Node;

    /// <summary><c>Max</c> null: unbounded.</summary>
    internal sealed record Repeat(Node Item, int Min, int? Max) : Node;

    /// <summary>Parses <paramref name="pattern"/>; throws <see cref="UnsupportedSchemaException"/> on what it cannot honour.</summary>
    public static Node Parse(string pattern, string path)
    {
        if (pattern.Length > MaxPatternLength)
        {
            throw new UnsupportedSchemaException("pattern", path,
                $"'pattern' (at '{path}') is longer than {MaxPatternLength.ToString(CultureInfo.InvariantCulture)} characters.");
        }

        var parser = new PatternGrammar(pattern, path);
        var end = pattern.Length;

        // Anchors at the ends: the grammar produces whole matches either way (see the class remarks).
        if (pattern.StartsWith('^'))
        {
            parser._pos = 1;
        }

        if (end > parser._pos && pattern[end - 1] == '$' && !IsEscaped(pattern, end - 1))
        {
            end--;
        }

        var node = parser.ParseAlternation(end);
        if (parser._pos != end)
        {
            throw parser.Refuse(parser._pattern[parser._pos] == ')' ? "an unmatched ')'" : $"'{parser._pattern[parser._pos]}' here");
        }

        return node;
    }

    /// <summary>
    /// The fewest and the most characters of a node's generated strings, where each open repetition (<c>*</c>, <c>+</c>,
    /// <c>{n,}</c>) may add up to <paramref name="unbounded"/> items, and a sixteenth of that per level it is nested in
    /// another repetition (as <see cref="Emit"/> generates them).
    /// </summary>
    public static (long Min, long Max) Lengths(Node node, int unbounded, int depth = 0)
    {
        switch (node)
        {
            case CharSet:
                return (1, 1);
            case Sequence s:
                return s.Items.Select(i => Lengths(i, unbounded, depth)).Aggregate((0L, 0L), (sum, l) => (Saturate(sum.Item1 + l.Min), Saturate(sum.Item2 + l.Max)));
            case Alternation a:
                return a.Options.Select(o => Lengths(o, unbounded, depth)).Aggregate((long.MaxValue, 0L), (acc, l) => (Math.Min(acc.Item1, l.Min), Math.Max(acc.Item2, l.Max)));
            case Repeat r:
                var max = MaxOf(r, unbounded, depth);
                var (itemMin, itemMax) = Lengths(r.Item, unbounded, max > 1 ? depth + 1 : depth);
                return (Saturate(Math.BigMul(itemMin, r.Min)), Saturate(Math.BigMul(itemMax, max)));
            default:
                throw new InvalidOperationException();
        }
    }

    // Lengths stay far below overflow: nested repetitions can claim more characters than a long holds.
    private const long Huge = long.MaxValue / 4;

    private static long Saturate(long value) => Math.Min(value, Huge);

    private static long Saturate(Int128 value) => value > Huge ? Huge : (long)value;

    /// <summary>The most items a repetition generates.</summary>
    private static int MaxOf(Repeat repeat, int unbounded, int depth) =>
        Math.Min(repeat.Max ?? repeat.Min + (unbounded >> (4 * Math.Min(depth, 7))), JsonSchemaGrammarCompiler.MaxRepetitions);

    private static bool IsEscaped(string text, int index)
    {
        var backslashes = 0;
        for (var i = index - 1; i >= 0 && text[i] == '\\'; i--)
        {
            backslashes++;
        }

        return backslashes % 2 == 1;
    }

    private UnsupportedSchemaException Refuse(string what) =>
        new("pattern", _path, $"'pattern' (at '{_path}') uses {what} at character {(_pos + 1).ToString(CultureInfo.InvariantCulture)}, which structured output cannot honour; supported: literals, '.', classes, \\d \\w \\s, groups, '|', quantifiers, and '^'/'$' at the ends.");

    private Node ParseAlternation(int end)
    {
        if (++_depth > MaxNesting)
        {
            throw Refuse($"groups nested deeper than {MaxNesting.ToString(CultureInfo.InvariantCulture)}");
        }

        var options = new List<Node> { ParseSequence(end) };
        while (_pos < end && _pattern[_pos] == '|')
        {
            _pos++;
            options.Add(ParseSequence(end));
        }

        _depth--;
        return options.Count == 1 ? options[0] : new Alternation(options);
    }

    private Node ParseSequence(int end)
    {
        var items = new List<Node>();
        while (_pos < end && _pattern[_pos] is not ('|' or ')'))
        {
            var atom = ParseAtom(end);
            var item = ParseQuantifier(atom, end);
            if (Lengths(item, 0).Min == 0 && ++_optionalParts > MaxOptionalParts)
            {
                throw new UnsupportedSchemaException("pattern", _path,
                    $"'pattern' (at '{_path}') has more than {MaxOptionalParts.ToString(CultureInfo.InvariantCulture)} parts that may be skipped ('?', '*', '{{0,n}}', '(a|)'), which the grammar engine cannot run in bounded time; merge them ('a{{0,64}}' rather than 'a?a?a?...').");
            }

            items.Add(item);
        }

        for (var i = 0; i < items.Count - 1; i++)
        {
            var next = new List<(int Low, int High)>();
            for (var j = i + 1; j < items.Count; j++)
            {
                next.AddRange(Firsts(items[j]));
                if (!Nullable(items[j]))
                {
                    break;
                }
            }

            // Only a repetition that may go on splits a string in as many ways as it is long: an optional part ('1?[0-9]')
            // splits it one way or the other, as many times as the pattern has skippable parts (bounded above).
            if (Overlap(Continuations(items[i], repeatsOnly: true), next) && ++_ambiguousJoins > MaxAmbiguousJoins)
            {
                throw new UnsupportedSchemaException("pattern", _path,
                    $"'pattern' (at '{_path}') has more than {MaxAmbiguousJoins.ToString(CultureInfo.InvariantCulture)} places where a repeated part may go on with what begins the next part ('a*a*', '.*x'), so a string splits between them in many ways, which the grammar engine cannot run in bounded time; merge such parts ('a*' rather than 'a*a*').");
            }
        }

        return items.Count == 1 ? items[0] : new Sequence(items);
    }

    private Node ParseQuantifier(Node atom, int end)
    {
        if (_pos >= end)
        {
            return atom;
        }

        int min;
        int? max;
        switch (_pattern[_pos])
        {
            case '*': (min, max) = (0, null); _pos++; break;
            case '+': (min, max) = (1, null); _pos++; break;
            case '?': (min, max) = (0, 1); _pos++; break;
            case '{' when TryBraces(end, out min, out max): break;
            default: return atom;
        }

        if (_pos < end && _pattern[_pos] == '?')
        {
            _pos++; // lazy: the same strings
        }

        if (_pos < end && _pattern[_pos] is '*' or '+' or '?' || (_pos < end && _pattern[_pos] == '{' && TryBraces(end, out _, out _, peek: true)))
        {
            throw Refuse("a quantifier after a quantifier");
        }

        if (Math.Max(min, max ?? 0) > JsonSchemaGrammarCompiler.MaxRepetitions)
        {
            throw new UnsupportedSchemaException("pattern", _path,
                $"'pattern' (at '{_path}') repeats more than {JsonSchemaGrammarCompiler.MaxRepetitions.ToString(CultureInfo.InvariantCulture)} times: the grammar engine repeats an element at most that many times.");
        }

        if ((max ?? int.MaxValue) > 1 && Lengths(atom, 0).Min == 0)
        {
            // '(a*)*': each string parses in countless ways (which repetition took each 'a'), and the grammar engines
            // track every parse, so the work per token grows without bound; one such request held a model's decode
            // thread, every tenant's, for minutes. The same strings have a form without the ambiguity.
            throw new UnsupportedSchemaException("pattern", _path,
                $"'pattern' (at '{_path}') repeats a part that can match an empty string (the quantifier ending at character {_pos.ToString(CultureInfo.InvariantCulture)}), which the grammar engine cannot run in bounded time; repeat a part that matches at least one character ('a*' rather than '(a*)*').");
        }

        if ((max ?? int.MaxValue) > 1 && Overlap(Continuations(atom), Firsts(atom)))
        {
            // '(a+)+', '(\w+\s?)*': where one repetition may go on, the next may begin, so a string splits between
            // repetitions in as many ways as it is long; llama.cpp's grammar keeps a parse stack per split and compares
            // them all on every character: 400 forced tokens of '(a+)+' took 42 s, slowing every tenant of the model.
            throw new UnsupportedSchemaException("pattern", _path,
                $"'pattern' (at '{_path}') repeats a part that can go on with what begins its next repetition (the quantifier ending at character {_pos.ToString(CultureInfo.InvariantCulture)}), so a string splits between repetitions in many ways, which the grammar engine cannot run in bounded time; write each repetition to begin with what ends the last ('\\w+(\\s\\w+)*' rather than '(\\w+\\s?)*', 'a+' rather than '(a+)+').");
        }

        return new Repeat(atom, min, max);
    }

    private static bool Nullable(Node node) => Lengths(node, 0).Min == 0;

    /// <summary>Characters that can begin a non-empty match of <paramref name="node"/>.</summary>
    private static List<(int Low, int High)> Firsts(Node node)
    {
        switch (node)
        {
            case CharSet set:
                return [.. set.Ranges];
            case Sequence s:
                var firsts = new List<(int Low, int High)>();
                foreach (var item in s.Items)
                {
                    firsts.AddRange(Firsts(item));
                    if (!Nullable(item))
                    {
                        break;
                    }
                }

                return firsts;
            case Alternation a:
                return [.. a.Options.SelectMany(Firsts)];
            case Repeat r:
                return r.Max == 0 ? [] : Firsts(r.Item);
            default:
                throw new InvalidOperationException();
        }
    }

    /// <summary>
    /// Characters with which a complete match of <paramref name="node"/> may go on to a longer one: through a repetition
    /// at its end, or (unless <paramref name="repeatsOnly"/>) by starting a skippable tail ('b?' in 'ab?').
    /// </summary>
    private static List<(int Low, int High)> Continuations(Node node, bool repeatsOnly = false)
    {
        switch (node)
        {
            case CharSet:
                return [];
            case Sequence s:
                var continuations = new List<(int Low, int High)>();
                for (var i = s.Items.Count - 1; i >= 0; i--)
                {
                    continuations.AddRange(Continuations(s.Items[i], repeatsOnly));
                    if (!Nullable(s.Items[i]))
                    {
                        break;
                    }

                    if (!repeatsOnly)
                    {
                        continuations.AddRange(Firsts(s.Items[i]));
                    }
                }

                return continuations;
            case Alternation a:
                return [.. a.Options.SelectMany(o => Continuations(o, repeatsOnly))];
            case Repeat r:
                var more = Continuations(r.Item, repeatsOnly);
                if ((r.Max ?? int.MaxValue) > Math.Max(r.Min, repeatsOnly ? 1 : 0))
                {
                    more.AddRange(Firsts(r.Item));
                }

                return more;
            default:
                throw new InvalidOperationException();
        }
    }

    private static bool Overlap(List<(int Low, int High)> a, List<(int Low, int High)> b) =>
        a.Exists(x => b.Exists(y => x.Low <= y.High && y.Low <= x.High));

    /// <summary><c>{n}</c>, <c>{n,}</c> or <c>{n,m}</c> at the cursor; anything else is a literal brace.</summary>
    private bool TryBraces(int end, out int min, out int? max, bool peek = false)
    {
        (min, max) = (0, null);
        var i = _pos + 1;
        var first = Digits(ref i, end);
        if (first is null)
        {
            return false;
        }

        int? second = first;
        if (i < end && _pattern[i] == ',')
        {
            i++;
            second = Digits(ref i, end);
        }

        if (i >= end || _pattern[i] != '}')
        {
            return false;
        }

        if (second < first)
        {
            throw Refuse("a repetition whose maximum is below its minimum");
        }

        (min, max) = (first.Value, second);
        if (!peek)
        {
            _pos = i + 1;
        }

        return true;
    }

    private int? Digits(ref int i, int end)
    {
        var start = i;
        while (i < end && char.IsAsciiDigit(_pattern[i]))
        {
            i++;
        }

        return i == start ? null : int.TryParse(_pattern.AsSpan(start, i - start), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : int.MaxValue;
    }

    private Node ParseAtom(int end)
    {
        var c = _pattern[_pos];
        switch (c)
        {
            case '(':
                _pos++;
                if (_pos < end && _pattern[_pos] == '?')
                {
                    if (_pos + 1 < end && _pattern[_pos + 1] == ':')
                    {
                        _pos += 2;
                    }
                    else if (_pos + 2 < end && _pattern[_pos + 1] == '<' && _pattern[_pos + 2] is not ('=' or '!'))
                    {
                        var close = _pattern.IndexOf('>', _pos);
                        if (close < 0 || close >= end)
                        {
                            throw Refuse("an unfinished group name");
                        }

                        _pos = close + 1;
                    }
                    else
                    {
                        throw Refuse("a lookaround or an inline flag");
                    }
                }

                var inner = ParseAlternation(end);
                if (_pos >= end || _pattern[_pos] != ')')
                {
                    throw Refuse("an unclosed '('");
                }

                _pos++;
                return inner;
            case '[':
                return ParseClass(end);
            case '.':
                _pos++;
                return Complement([('\n', '\n'), ('\r', '\r'), ('\u2028', '\u2029')]);
            case '\\':
                return ParseEscape(end, inClass: false) ?? throw Refuse("an escape");
            case '^' or '$':
                throw Refuse($"'{c}' inside the pattern (only at its start or end)");
            case '*' or '+' or '?':
                throw Refuse($"'{c}' with nothing to repeat");
            case '{' when TryBraces(end, out _, out _, peek: true):
                throw Refuse("'{' with nothing to repeat");
            default:
                return Single(NextCodePoint());
        }
    }

    /// <summary>The code point at the cursor (a lone surrogate as itself), moving past it.</summary>
    private int NextCodePoint()
    {
        if (char.IsSurrogatePair(_pattern, _pos))
        {
            _pos += 2;
            return char.ConvertToUtf32(_pattern[_pos - 2], _pattern[_pos - 1]);
        }

        return _pattern[_pos++];
    }

    private static CharSet Single(int code) => new([(code, code)]);

    /// <summary>An escape at the cursor (a backslash): a set, or null where the caller refuses it.</summary>
    private CharSet? ParseEscape(int end, bool inClass)
    {
        _pos++;
        if (_pos >= end)
        {
            throw Refuse("a trailing backslash");
        }

        var c = _pattern[_pos++];
        switch (c)
        {
            case 'd': return Digit;
            case 'D': return Complement(Digit.Ranges);
            case 'w': return Word;
            case 'W': return Complement(Word.Ranges);
            case 's': return Space;
            case 'S': return Complement(EcmaSpace);
            case 't': return Single('\t');
            case 'n': return Single('\n');
            case 'r': return Single('\r');
            case 'f': return Single('\f');
            case 'v': return Single('\v');
            case 'b' when inClass: return Single('\b');
            case 'x': return Single(Hex(2, end));
            case 'u': return Single(Hex(4, end));
            case '0' when _pos >= end || !char.IsAsciiDigit(_pattern[_pos]): return Single(0);
            case 'b' or 'B':
                _pos -= 2;
                throw Refuse("a word boundary");
            case >= '1' and <= '9' or 'k':
                _pos -= 2;
                throw Refuse("a backreference");
            case 'p' or 'P':
                _pos -= 2;
                throw Refuse("a Unicode property escape");
            case 'c':
                _pos -= 2;
                throw Refuse("a control-character escape");
            default:
                return char.IsAsciiLetterOrDigit(c) ? throw RefuseAt(-2, $"the unknown escape '\\{c}'") : Single(c);
        }
    }

    private UnsupportedSchemaException RefuseAt(int offset, string what)
    {
        _pos += offset;
        return Refuse(what);
    }

    private int Hex(int digits, int end)
    {
        if (_pos + digits > end || !int.TryParse(_pattern.AsSpan(_pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var code))
        {
            throw RefuseAt(-2, "an incomplete hexadecimal escape");
        }

        _pos += digits;
        return code;
    }

    private CharSet ParseClass(int end)
    {
        var start = _pos;
        _pos++;
        var negated = _pos < end && _pattern[_pos] == '^';
        if (negated)
        {
            _pos++;
        }

        // ECMA-262 reads '[]' as a class that matches nothing and '[^]' as any character; other engines (.NET's,
        // PCRE's) read the ']' as a literal: validators disagree, so neither is generated.
        if (_pos < end && _pattern[_pos] == ']')
        {
            throw Refuse("a class that begins with ']' (read differently by ECMA-262 and other regex engines)");
        }

        var ranges = new List<(int Low, int High)>();
        while (true)
        {
            if (_pos >= end)
            {
                _pos = start;
                throw Refuse("an unclosed '['");
            }

            if (_pattern[_pos] == ']')
            {
                _pos++;
                break;
            }

            var low = ClassAtom(end);
            if (_pos + 1 < end && _pattern[_pos] == '-' && _pattern[_pos + 1] != ']' && low.Ranges is [var (l, h)] && l == h)
            {
                _pos++;
                var high = ClassAtom(end);
                if (high.Ranges is not [var (hl, hh)] || hl != hh)
                {
                    throw Refuse("a range that ends in a class escape");
                }

                if (hl < l)
                {
                    throw Refuse("a range out of order");
                }

                ranges.Add((l, hl));
            }
            else
            {
                ranges.AddRange(low.Ranges);
            }
        }

        var set = Normalize(ranges);
        return negated ? Complement(set.Ranges) : set;
    }

    private CharSet ClassAtom(int end)
    {
        if (_pattern[_pos] == '\\')
        {
            return ParseEscape(end, inClass: true)!;
        }

        return Single(NextCodePoint());
    }

    private static readonly CharSet Digit = new([('0', '9')]);
    private static readonly CharSet Word = new([('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')]);
    private static readonly CharSet Space = new([('\t', '\n'), ('\r', '\r'), (' ', ' ')]);

    // What ECMA-262's \s matches; \S excludes all of it (the generated \s is the ASCII part, a subset).
    private static readonly (int, int)[] EcmaSpace =
    [
        ('\t', '\r'), (' ', ' '), ('\u00A0', '\u00A0'), ('\u1680', '\u1680'), ('\u2000', '\u200A'), ('\u2028', '\u2029'),
        ('\u202F', '\u202F'), ('\u205F', '\u205F'), ('\u3000', '\u3000'), ('\uFEFF', '\uFEFF'),
    ];

    private static CharSet Normalize(IEnumerable<(int Low, int High)> ranges)
    {
        var merged = new List<(int Low, int High)>();
        foreach (var (low, high) in ranges.OrderBy(r => r.Low))
        {
            if (merged.Count > 0 && low <= merged[^1].High + 1)
            {
                merged[^1] = (merged[^1].Low, Math.Max(merged[^1].High, high));
            }
            else
            {
                merged.Add((low, high));
            }
        }

        return new CharSet(merged);
    }

    private static CharSet Complement(IEnumerable<(int Low, int High)> ranges)
    {
        var result = new List<(int Low, int High)>();
        var next = 0;
        foreach (var (low, high) in Normalize(ranges).Ranges)
        {
            if (low > next)
            {
                result.Add((next, low - 1));
            }

            next = Math.Max(next, high + 1);
        }

        if (next <= 0x10FFFF)
        {
            result.Add((next, 0x10FFFF));
        }

        return new CharSet(result);
    }

    /// <summary>
    /// GBNF for a node's strings, JSON-escaped (empty: only the empty string). <paramref name="rule"/> names an
    /// expression (reusing identical ones): every repetition is a rule of its own that repeats one symbol, so llama.cpp
    /// never multiplies two repetitions of one sequence. Open repetitions are bounded as <see cref="Lengths"/> says.
    /// </summary>
    public static string Emit(Node node, int unbounded, Func<string, string> rule, string path, int depth = 0)
    {
        switch (node)
        {
            case CharSet set:
                return EmitSet(set, path);
            case Sequence s:
                return string.Join(' ', s.Items.Select(i => Emit(i, unbounded, rule, path, depth)).Where(p => p.Length > 0));
            case Alternation a:
                var options = a.Options.Select(o => Emit(o, unbounded, rule, path, depth)).ToList();
                var present = options.Where(o => o.Length > 0).Distinct(StringComparer.Ordinal).ToList();
                if (present.Count == 0)
                {
                    return "";
                }

                var choice = "( " + string.Join(" | ", present) + " )";
                return present.Count < options.Count ? choice + "?" : choice;
            case Repeat r:
                var max = MaxOf(r, unbounded, depth);
                var item = Emit(r.Item, unbounded, rule, path, max > 1 ? depth + 1 : depth);
                if (item.Length == 0 || max == 0)
                {
                    return "";
                }

                var symbol = rule(item);
                return (r.Min, max) switch
                {
                    (1, 1) => symbol,
                    (0, 1) => symbol + "?",
                    _ when r.Min == max => rule($"{symbol}{{{max.ToString(CultureInfo.InvariantCulture)}}}"),
                    _ => rule($"{symbol}{{{r.Min.ToString(CultureInfo.InvariantCulture)},{max.ToString(CultureInfo.InvariantCulture)}}}"),
                };
            default:
                throw new InvalidOperationException();
        }
    }

    /// <summary>
    /// One character of the set as JSON text: printable characters as themselves, '"' and '\' escaped, tab, newline
    /// and carriage return as their escapes; other control characters, surrogates and characters beyond the BMP are
    /// never generated.
    /// </summary>
    private static string EmitSet(CharSet set, string path)
    {
        var plain = new List<(int Low, int High)>();
        var escapes = new List<string>();
        foreach (var (low, high) in set.Ranges)
        {
            foreach (var (l, h) in Cut(low, Math.Min(high, LastBmp)))
            {
                plain.Add((l, h));
            }

            foreach (var (c, escape) in new[] { ('"', "\"\\\\\\\"\""), ('\\', "\"\\\\\\\\\""), ('\t', "\"\\\\t\""), ('\n', "\"\\\\n\""), ('\r', "\"\\\\r\"") })
            {
                if (c >= low && c <= high)
                {
                    escapes.Add(escape);
                }
            }
        }

        var options = new List<string>(escapes.Count + 1);
        if (plain.Count > 0)
        {
            var text = new StringBuilder("[");
            foreach (var (low, high) in plain)
            {
                text.Append(ClassChar(low));
                if (high > low)
                {
                    text.Append('-').Append(ClassChar(high));
                }
            }

            options.Add(text.Append(']').ToString());
        }

        options.AddRange(escapes);
        return options.Count switch
        {
            0 => throw new UnsupportedSchemaException("pattern", path,
                $"'pattern' (at '{path}') has a character class with no character that can be written in generated text (only control characters or characters beyond U+FFFF)."),
            1 => options[0],
            _ => "( " + string.Join(" | ", options) + " )",
        };
    }

    /// <summary>A range without the characters JSON escapes or the grammar never emits.</summary>
    private static IEnumerable<(int Low, int High)> Cut(int low, int high)
    {
        int[][] holes = [[0, 0x1F], ['"', '"'], ['\\', '\\'], [0x7F, 0x7F], [0xD800, 0xDFFF]];
        var from = low;
        foreach (var hole in holes)
        {
            if (hole[1] < from || hole[0] > high)
            {
                continue;
            }

            if (hole[0] > from)
            {
                yield return (from, hole[0] - 1);
            }

            from = hole[1] + 1;
        }

        if (from <= high)
        {
            yield return (from, high);
        }
    }

    private static string ClassChar(int code) => code switch
    {
        ']' or '[' or '\\' => "\\" + (char)code,
        '-' or '^' => "\\x" + code.ToString("X2", CultureInfo.InvariantCulture), // GBNF escapes neither
        < 0x80 and >= 0x20 => ((char)code).ToString(),
        _ => "\\u" + code.ToString("X4", CultureInfo.InvariantCulture),
    };
}
