using System.Globalization;
using System.Text;

namespace Sovereign.Inference.Templates;

/// <summary>Kinds of <see cref="JinjaToken"/>.</summary>
internal enum TokenKind
{
    Text,
    OutputStart,
    OutputEnd,
    BlockStart,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    End,
}

/// <summary>One token: raw text between tags, a tag delimiter, or a piece of an expression.</summary>
internal readonly record struct JinjaToken(TokenKind Kind, string Value, int Line)
{
    public bool Is(TokenKind kind, string value) => Kind == kind && Value == value;

    public bool IsName(string value) => Kind == TokenKind.Name && Value == value;

    public bool IsOperator(string value) => Kind == TokenKind.Operator && Value == value;
}

/// <summary>
/// Splits a template into tokens with Hugging Face's settings: <c>trim_blocks</c> and <c>lstrip_blocks</c> on, and
/// the <c>-</c>/<c>+</c> whitespace markers on tags. Comments are dropped (they trim like blocks).
/// </summary>
internal static class JinjaLexer
{
    private static readonly string[] Operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="];

    private enum TagKind { Output, Block, Comment }

    /// <summary>A tag found in the source: what is inside, and its whitespace markers.</summary>
    private sealed record Tag(TagKind Kind, List<JinjaToken> Tokens, char LeftMarker, char RightMarker);

    public static List<JinjaToken> Tokenize(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        source = source.Replace("\r\n", "\n", StringComparison.Ordinal);

        // Jinja drops one trailing newline of the template (keep_trailing_newline is off).
        if (source.EndsWith('\n'))
        {
            source = source[..^1];
        }

        // Pass 1: alternating raw text and tags (a text piece may be empty).
        var texts = new List<(int Start, int End)>();
        var tags = new List<Tag>();
        var pos = 0;
        var line = 1;
        while (true)
        {
            var open = NextTagStart(source, pos);
            if (open < 0)
            {
                texts.Add((pos, source.Length));
                break;
            }

            texts.Add((pos, open));
            line += Count(source, pos, open, '\n');
            var kind = source[open + 1] switch { '{' => TagKind.Output, '%' => TagKind.Block, _ => TagKind.Comment };
            var inner = open + 2;
            var left = inner < source.Length && source[inner] is '-' or '+' ? source[inner] : ' ';
            if (left != ' ')
            {
                inner++;
            }

            if (kind == TagKind.Comment)
            {
                var close = source.IndexOf("#}", inner, StringComparison.Ordinal);
                if (close < 0)
                {
                    throw new TemplateNotSupportedException("A comment is not closed", line);
                }

                var right = close > inner && source[close - 1] is '-' or '+' ? source[close - 1] : ' ';
                line += Count(source, open, close, '\n');
                tags.Add(new Tag(kind, [], left, right));
                pos = close + 2;
                continue;
            }

            var tokens = new List<JinjaToken>();
            var (end, rightMarker) = LexExpression(source, inner, kind == TagKind.Output ? "}}" : "%}", tokens, ref line);
            pos = end;
            if (kind == TagKind.Block && tokens.Count == 1 && tokens[0].IsName("raw"))
            {
                // {% raw %}...{% endraw %}: the body is text, tags and all.
                var endRaw = FindEndRaw(source, pos, out var afterEndRaw, out var endRawLeft, out var endRawRight);
                if (endRaw < 0)
                {
                    throw new TemplateNotSupportedException("A raw block is not closed", line);
                }

                tags.Add(new Tag(TagKind.Comment, [], left, rightMarker));
                texts.Add((pos, endRaw));
                line += Count(source, pos, afterEndRaw, '\n');
                tags.Add(new Tag(TagKind.Comment, [], endRawLeft, endRawRight));
                pos = afterEndRaw;
                continue;
            }

            tags.Add(new Tag(kind, tokens, left, rightMarker));
        }

        // Pass 2: apply whitespace control to each text from the tags on either side, and flatten.
        var result = new List<JinjaToken>();
        var textLine = 1;
        for (var i = 0; i < texts.Count; i++)
        {
            var (start, end) = texts[i];
            var before = i > 0 ? tags[i - 1] : null;
            var after = i < tags.Count ? tags[i] : null;
            if (before is not null)
            {
                if (before.RightMarker == '-')
                {
                    while (start < end && char.IsWhiteSpace(source[start]))
                    {
                        start++;
                    }
                }
                else if (before.Kind != TagKind.Output && before.RightMarker != '+' && start < end && source[start] == '\n')
                {
                    start++; // trim_blocks
                }
            }

            if (after is not null)
            {
                if (after.LeftMarker == '-')
                {
                    while (end > start && char.IsWhiteSpace(source[end - 1]))
                    {
                        end--;
                    }
                }
                else if (after.Kind != TagKind.Output && after.LeftMarker != '+')
                {
                    // lstrip_blocks: spaces and tabs from the start of the line to the tag.
                    var cut = end;
                    while (cut > start && source[cut - 1] is ' ' or '\t')
                    {
                        cut--;
                    }

                    if (cut == 0 || source[cut - 1] == '\n')
                    {
                        end = cut;
                    }
                }
            }

            if (end > start)
            {
                result.Add(new JinjaToken(TokenKind.Text, source[start..end], textLine));
            }

            textLine += Count(source, texts[i].Start, texts[i].End, '\n');
            if (after is not null && after.Kind != TagKind.Comment)
            {
                var tagLine = after.Tokens.Count > 0 ? after.Tokens[0].Line : textLine;
                result.Add(new JinjaToken(after.Kind == TagKind.Output ? TokenKind.OutputStart : TokenKind.BlockStart, "", tagLine));
                result.AddRange(after.Tokens);
                result.Add(new JinjaToken(after.Kind == TagKind.Output ? TokenKind.OutputEnd : TokenKind.BlockEnd, "", tagLine));
                textLine = after.Tokens.Count > 0 ? after.Tokens[^1].Line : textLine;
            }
        }

        result.Add(new JinjaToken(TokenKind.End, "", line));
        return result;
    }

    private static int NextTagStart(string source, int from)
    {
        for (var i = source.IndexOf('{', from); i >= 0 && i + 1 < source.Length; i = source.IndexOf('{', i + 1))
        {
            if (source[i + 1] is '{' or '%' or '#')
            {
                return i;
            }
        }

        return -1;
    }

    private static int Count(string source, int start, int end, char c)
    {
        var count = 0;
        for (var i = start; i < end && i < source.Length; i++)
        {
            if (source[i] == c)
            {
                count++;
            }
        }

        return count;
    }

    private static int FindEndRaw(string source, int from, out int after, out char left, out char right)
    {
        for (var i = source.IndexOf("{%", from, StringComparison.Ordinal); i >= 0; i = source.IndexOf("{%", i + 2, StringComparison.Ordinal))
        {
            var j = i + 2;
            left = j < source.Length && source[j] is '-' or '+' ? source[j++] : ' ';
            while (j < source.Length && source[j] is ' ' or '\t' or '\n')
            {
                j++;
            }

            if (string.CompareOrdinal(source, j, "endraw", 0, 6) != 0)
            {
                continue;
            }

            j += 6;
            while (j < source.Length && source[j] is ' ' or '\t' or '\n')
            {
                j++;
            }

            right = j < source.Length && source[j] is '-' or '+' ? source[j++] : ' ';
            if (string.CompareOrdinal(source, j, "%}", 0, 2) == 0)
            {
                after = j + 2;
                return i;
            }
        }

        after = -1;
        left = right = ' ';
        return -1;
    }

    /// <summary>Lexes an expression up to the closing delimiter; returns the position after it and its marker.</summary>
    private static (int End, char Marker) LexExpression(string source, int pos, string close, List<JinjaToken> tokens, ref int line)
    {
        var depth = 0;
        while (true)
        {
            while (pos < source.Length && char.IsWhiteSpace(source[pos]))
            {
                if (source[pos] == '\n')
                {
                    line++;
                }

                pos++;
            }

            if (pos >= source.Length)
            {
                throw new TemplateNotSupportedException($"A tag is not closed with '{close}'", line);
            }

            if (depth == 0)
            {
                if (string.CompareOrdinal(source, pos, close, 0, 2) == 0)
                {
                    return (pos + 2, ' ');
                }

                if (source[pos] is '-' or '+' && string.CompareOrdinal(source, pos + 1, close, 0, 2) == 0)
                {
                    return (pos + 3, source[pos]);
                }
            }

            var c = source[pos];
            if (char.IsAsciiLetter(c) || c == '_')
            {
                var start = pos;
                while (pos < source.Length && (char.IsAsciiLetterOrDigit(source[pos]) || source[pos] == '_'))
                {
                    pos++;
                }

                tokens.Add(new JinjaToken(TokenKind.Name, source[start..pos], line));
            }
            else if (char.IsAsciiDigit(c))
            {
                var start = pos;
                while (pos < source.Length && (char.IsAsciiDigit(source[pos]) || source[pos] == '_'))
                {
                    pos++;
                }

                var isFloat = false;
                if (pos + 1 < source.Length && source[pos] == '.' && char.IsAsciiDigit(source[pos + 1]))
                {
                    isFloat = true;
                    pos++;
                    while (pos < source.Length && char.IsAsciiDigit(source[pos]))
                    {
                        pos++;
                    }
                }

                if (pos < source.Length && source[pos] is 'e' or 'E')
                {
                    var exp = pos + 1;
                    if (exp < source.Length && source[exp] is '+' or '-')
                    {
                        exp++;
                    }

                    if (exp < source.Length && char.IsAsciiDigit(source[exp]))
                    {
                        isFloat = true;
                        pos = exp;
                        while (pos < source.Length && char.IsAsciiDigit(source[pos]))
                        {
                            pos++;
                        }
                    }
                }

                tokens.Add(new JinjaToken(isFloat ? TokenKind.Float : TokenKind.Integer, source[start..pos].Replace("_", "", StringComparison.Ordinal), line));
            }
            else if (c is '\'' or '"')
            {
                tokens.Add(new JinjaToken(TokenKind.String, ReadString(source, ref pos, ref line), line));
            }
            else
            {
                var op = Array.Find(Operators, o => string.CompareOrdinal(source, pos, o, 0, o.Length) == 0)
                    ?? throw new TemplateNotSupportedException($"Unexpected character '{c}'", line);
                depth += op is "(" or "[" or "{" ? 1 : op is ")" or "]" or "}" ? -1 : 0;
                tokens.Add(new JinjaToken(TokenKind.Operator, op, line));
                pos += op.Length;
            }
        }
    }

    private static string ReadString(string source, ref int pos, ref int line)
    {
        var quote = source[pos++];
        var text = new StringBuilder();
        while (true)
        {
            if (pos >= source.Length)
            {
                throw new TemplateNotSupportedException("A string literal is not closed", line);
            }

            var c = source[pos++];
            if (c == quote)
            {
                return text.ToString();
            }

            if (c == '\n')
            {
                line++;
            }

            if (c != '\\' || pos >= source.Length)
            {
                text.Append(c);
                continue;
            }

            var e = source[pos++];
            switch (e)
            {
                case 'n': text.Append('\n'); break;
                case 't': text.Append('\t'); break;
                case 'r': text.Append('\r'); break;
                case 'b': text.Append('\b'); break;
                case 'f': text.Append('\f'); break;
                case '0': text.Append('\0'); break;
                case '\\' or '\'' or '"': text.Append(e); break;
                case '\n': line++; break;
                case 'u' when pos + 4 <= source.Length && int.TryParse(source.AsSpan(pos, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var code):
                    text.Append((char)code);
                    pos += 4;
                    break;
                case 'x' when pos + 2 <= source.Length && int.TryParse(source.AsSpan(pos, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var hex):
                    text.Append((char)hex);
                    pos += 2;
                    break;
                default:
                    text.Append('\\').Append(e); // Python keeps unknown escapes as written
                    break;
            }
        }
    }
}
