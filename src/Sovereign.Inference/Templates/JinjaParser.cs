using System.Globalization;

namespace Sovereign.Inference.Templates;

/// <summary>
/// Parses tokens into statements. What the engine does not implement (an unknown tag, filter or test;
/// <c>include</c>, <c>extends</c>, <c>import</c>) is refused here, before any render, with
/// <see cref="TemplateNotSupportedException"/>.
/// </summary>
internal sealed class JinjaParser
{
    /// <summary>Deepest nesting of blocks and expressions; deeper templates are refused rather than risk the stack.</summary>
    private const int MaxDepth = 200;

    private readonly List<JinjaToken> _tokens;
    private int _pos;
    private int _depth;

    private JinjaParser(List<JinjaToken> tokens) => _tokens = tokens;

    public static IReadOnlyList<Stmt> Parse(string source)
    {
        var parser = new JinjaParser(JinjaLexer.Tokenize(source));
        var body = parser.ParseBody(out var end);
        if (end is not null)
        {
            throw parser.Unsupported($"Unexpected '{end}' tag");
        }

        return body;
    }

    private JinjaToken Current => _tokens[_pos];

    private JinjaToken Peek(int ahead = 1) => _tokens[Math.Min(_pos + ahead, _tokens.Count - 1)];

    private JinjaToken Next() => _tokens[_pos++];

    private TemplateNotSupportedException Unsupported(string message) => new(message, Current.Line);

    private void Expect(TokenKind kind, string? value = null)
    {
        var token = Current;
        if (token.Kind != kind || (value is not null && token.Value != value))
        {
            throw Unsupported($"Expected {value ?? kind.ToString()} but found '{(token.Kind == TokenKind.End ? "end of template" : token.Value)}'");
        }

        _pos++;
    }

    private bool Accept(TokenKind kind, string value)
    {
        if (Current.Is(kind, value))
        {
            _pos++;
            return true;
        }

        return false;
    }

    private string ExpectName()
    {
        if (Current.Kind != TokenKind.Name)
        {
            throw Unsupported($"Expected a name but found '{Current.Value}'");
        }

        return Next().Value;
    }

    private void Enter()
    {
        if (++_depth > MaxDepth)
        {
            throw Unsupported($"The template nests deeper than {MaxDepth} levels");
        }
    }

    /// <summary>Parses statements until a block tag that this body does not own; returns that tag's name (null at the end).</summary>
    private List<Stmt> ParseBody(out string? endTag, params string[] ends)
    {
        Enter();
        var body = new List<Stmt>();
        while (true)
        {
            var token = Current;
            switch (token.Kind)
            {
                case TokenKind.End:
                    endTag = null;
                    if (ends.Length > 0)
                    {
                        throw Unsupported($"Missing '{ends[^1]}'");
                    }

                    _depth--;
                    return body;
                case TokenKind.Text:
                    _pos++;
                    body.Add(new TextStmt(token.Value, token.Line));
                    break;
                case TokenKind.OutputStart:
                    _pos++;
                    var value = ParseExpression();
                    Expect(TokenKind.OutputEnd);
                    body.Add(new OutputStmt(value, token.Line));
                    break;
                case TokenKind.BlockStart:
                    var name = Peek().Kind == TokenKind.Name ? Peek().Value : "";
                    if (Array.IndexOf(ends, name) >= 0)
                    {
                        _pos += 2; // the caller reads the rest of the tag
                        endTag = name;
                        _depth--;
                        return body;
                    }

                    _pos++;
                    body.Add(ParseStatement());
                    break;
                default:
                    throw Unsupported($"Unexpected '{token.Value}'");
            }
        }
    }

    private Stmt ParseStatement()
    {
        var line = Current.Line;
        var keyword = ExpectName();
        switch (keyword)
        {
            case "if":
                return ParseIf(line);
            case "for":
                return ParseFor(line);
            case "set":
                return ParseSet(line);
            case "macro":
                return ParseMacro(line);
            case "call":
                return ParseCallBlock(line);
            case "filter":
                {
                    var (filter, args) = ParseFilterCall();
                    Expect(TokenKind.BlockEnd);
                    var body = ParseBody(out _, "endfilter");
                    Expect(TokenKind.BlockEnd);
                    return new FilterBlockStmt(filter, args, body, line);
                }

            case "break":
                Expect(TokenKind.BlockEnd);
                return new BreakStmt(line);
            case "continue":
                Expect(TokenKind.BlockEnd);
                return new ContinueStmt(line);
            case "generation":
                {
                    Expect(TokenKind.BlockEnd);
                    var body = ParseBody(out _, "endgeneration");
                    Expect(TokenKind.BlockEnd);
                    return new BlockBodyStmt(body, line);
                }

            default:
                throw new TemplateNotSupportedException($"The '{keyword}' tag is not supported", line);
        }
    }

    private IfStmt ParseIf(int line)
    {
        var branches = new List<(Expr, IReadOnlyList<Stmt>)>();
        var condition = ParseExpression();
        Expect(TokenKind.BlockEnd);
        while (true)
        {
            var body = ParseBody(out var end, "elif", "else", "endif");
            branches.Add((condition, body));
            if (end == "elif")
            {
                condition = ParseExpression();
                Expect(TokenKind.BlockEnd);
                continue;
            }

            Expect(TokenKind.BlockEnd);
            if (end == "else")
            {
                var elseBody = ParseBody(out _, "endif");
                Expect(TokenKind.BlockEnd);
                return new IfStmt(branches, elseBody, line);
            }

            return new IfStmt(branches, null, line);
        }
    }

    private ForStmt ParseFor(int line)
    {
        var targets = new List<string> { ExpectName() };
        while (Accept(TokenKind.Operator, ","))
        {
            targets.Add(ExpectName());
        }

        if (!Accept(TokenKind.Name, "in"))
        {
            throw Unsupported("Expected 'in' in a for loop");
        }

        // The iterable stops before a trailing 'if' (a loop filter), so no conditional expression here.
        var iterable = ParseOr();
        Expr? filter = null;
        if (Accept(TokenKind.Name, "if"))
        {
            filter = ParseExpression();
        }

        if (Current.IsName("recursive"))
        {
            throw Unsupported("Recursive loops are not supported");
        }

        Expect(TokenKind.BlockEnd);
        var body = ParseBody(out var end, "else", "endfor");
        Expect(TokenKind.BlockEnd);
        List<Stmt>? elseBody = null;
        if (end == "else")
        {
            elseBody = ParseBody(out _, "endfor");
            Expect(TokenKind.BlockEnd);
        }

        return new ForStmt(targets, iterable, filter, body, elseBody, line);
    }

    private Stmt ParseSet(int line)
    {
        var first = ExpectName();
        if (Accept(TokenKind.Operator, "."))
        {
            var attribute = ExpectName();
            Expect(TokenKind.Operator, "=");
            var value = ParseExpression();
            Expect(TokenKind.BlockEnd);
            return new SetStmt([first], attribute, value, line);
        }

        var targets = new List<string> { first };
        while (Accept(TokenKind.Operator, ","))
        {
            targets.Add(ExpectName());
        }

        if (Current.Kind == TokenKind.BlockEnd && targets.Count == 1)
        {
            _pos++;
            var body = ParseBody(out _, "endset");
            Expect(TokenKind.BlockEnd);
            return new SetBlockStmt(first, body, line);
        }

        Expect(TokenKind.Operator, "=");
        var assigned = ParseTupleOrExpression();
        Expect(TokenKind.BlockEnd);
        return new SetStmt(targets, null, assigned, line);
    }

    private MacroStmt ParseMacro(int line)
    {
        var name = ExpectName();
        var parameters = new List<(string, Expr?)>();
        Expect(TokenKind.Operator, "(");
        while (!Accept(TokenKind.Operator, ")"))
        {
            var parameter = ExpectName();
            Expr? defaultValue = null;
            if (Accept(TokenKind.Operator, "="))
            {
                defaultValue = ParseExpression();
            }

            parameters.Add((parameter, defaultValue));
            if (!Current.IsOperator(")"))
            {
                Expect(TokenKind.Operator, ",");
            }
        }

        Expect(TokenKind.BlockEnd);
        var body = ParseBody(out _, "endmacro");
        Expect(TokenKind.BlockEnd);
        return new MacroStmt(name, parameters, body, line);
    }

    private CallBlockStmt ParseCallBlock(int line)
    {
        if (ParsePostfix(ParsePrimary()) is not CallExpr call)
        {
            throw Unsupported("A call block must call a macro");
        }

        Expect(TokenKind.BlockEnd);
        var body = ParseBody(out _, "endcall");
        Expect(TokenKind.BlockEnd);
        return new CallBlockStmt(call, body, line);
    }

    /// <summary><c>a, b</c> without brackets is a tuple (in <c>set</c>).</summary>
    private Expr ParseTupleOrExpression()
    {
        var line = Current.Line;
        var first = ParseExpression();
        if (!Current.IsOperator(","))
        {
            return first;
        }

        var items = new List<Expr> { first };
        while (Accept(TokenKind.Operator, ","))
        {
            items.Add(ParseExpression());
        }

        return new ListExpr(items, IsTuple: true, line);
    }

    private Expr ParseExpression()
    {
        Enter();
        var line = Current.Line;
        var value = ParseOr();
        if (Accept(TokenKind.Name, "if"))
        {
            var condition = ParseOr();
            Expr? otherwise = null;
            if (Accept(TokenKind.Name, "else"))
            {
                otherwise = ParseExpression();
            }

            value = new ConditionalExpr(condition, value, otherwise, line);
        }

        _depth--;
        return value;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Current.IsName("or"))
        {
            var line = Next().Line;
            left = new BinaryExpr("or", left, ParseAnd(), line);
        }

        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Current.IsName("and"))
        {
            var line = Next().Line;
            left = new BinaryExpr("and", left, ParseNot(), line);
        }

        return left;
    }

    private Expr ParseNot()
    {
        if (Current.IsName("not"))
        {
            var line = Next().Line;
            Enter();
            var operand = ParseNot();
            _depth--;
            return new UnaryExpr("not", operand, line);
        }

        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var left = ParseMath1();
        while (true)
        {
            var token = Current;
            string? op = null;
            if (token.Kind == TokenKind.Operator && token.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                op = token.Value;
                _pos++;
            }
            else if (token.IsName("in"))
            {
                op = "in";
                _pos++;
            }
            else if (token.IsName("not") && Peek().IsName("in"))
            {
                op = "not in";
                _pos += 2;
            }

            if (op is null)
            {
                return left;
            }

            left = new BinaryExpr(op, left, ParseMath1(), token.Line);
        }
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.Kind == TokenKind.Operator && Current.Value is "+" or "-")
        {
            var token = Next();
            left = new BinaryExpr(token.Value, left, ParseConcat(), token.Line);
        }

        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (Current.IsOperator("~"))
        {
            var token = Next();
            left = new BinaryExpr("~", left, ParseMath2(), token.Line);
        }

        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Kind == TokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var token = Next();
            left = new BinaryExpr(token.Value, left, ParsePow(), token.Line);
        }

        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary();
        while (Current.IsOperator("**"))
        {
            var token = Next();
            left = new BinaryExpr("**", left, ParseUnary(), token.Line);
        }

        return left;
    }

    private Expr ParseUnary()
    {
        if (Current.Kind == TokenKind.Operator && Current.Value is "-" or "+")
        {
            var token = Next();
            Enter();
            var operand = ParseUnary();
            _depth--;
            return new UnaryExpr(token.Value, operand, token.Line);
        }

        return ParseFiltersAndTests(ParsePostfix(ParsePrimary()));
    }

    private Expr ParsePrimary()
    {
        var token = Next();
        switch (token.Kind)
        {
            case TokenKind.String:
                var text = token.Value;
                while (Current.Kind == TokenKind.String)
                {
                    text += Next().Value; // adjacent literals concatenate, as in Python
                }

                return new LiteralExpr(text, token.Line);
            case TokenKind.Integer:
                return long.TryParse(token.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var integer)
                    ? new LiteralExpr(integer, token.Line)
                    : new LiteralExpr(double.Parse(token.Value, CultureInfo.InvariantCulture), token.Line);
            case TokenKind.Float:
                return new LiteralExpr(double.Parse(token.Value, NumberStyles.Float, CultureInfo.InvariantCulture), token.Line);
            case TokenKind.Name:
                return token.Value switch
                {
                    "true" or "True" => new LiteralExpr(true, token.Line),
                    "false" or "False" => new LiteralExpr(false, token.Line),
                    "none" or "None" => new LiteralExpr(null, token.Line),
                    _ => new NameExpr(token.Value, token.Line),
                };
            case TokenKind.Operator when token.Value == "(":
                {
                    Enter();
                    if (Accept(TokenKind.Operator, ")"))
                    {
                        _depth--;
                        return new ListExpr([], IsTuple: true, token.Line);
                    }

                    var first = ParseExpression();
                    if (Accept(TokenKind.Operator, ")"))
                    {
                        _depth--;
                        return first;
                    }

                    var items = new List<Expr> { first };
                    while (Accept(TokenKind.Operator, ",") && !Current.IsOperator(")"))
                    {
                        items.Add(ParseExpression());
                    }

                    Expect(TokenKind.Operator, ")");
                    _depth--;
                    return new ListExpr(items, IsTuple: true, token.Line);
                }

            case TokenKind.Operator when token.Value == "[":
                {
                    Enter();
                    var items = new List<Expr>();
                    while (!Accept(TokenKind.Operator, "]"))
                    {
                        items.Add(ParseExpression());
                        if (!Current.IsOperator("]"))
                        {
                            Expect(TokenKind.Operator, ",");
                        }
                    }

                    _depth--;
                    return new ListExpr(items, IsTuple: false, token.Line);
                }

            case TokenKind.Operator when token.Value == "{":
                {
                    Enter();
                    var pairs = new List<(Expr, Expr)>();
                    while (!Accept(TokenKind.Operator, "}"))
                    {
                        var key = ParseExpression();
                        Expect(TokenKind.Operator, ":");
                        pairs.Add((key, ParseExpression()));
                        if (!Current.IsOperator("}"))
                        {
                            Expect(TokenKind.Operator, ",");
                        }
                    }

                    _depth--;
                    return new DictExpr(pairs, token.Line);
                }

            default:
                _pos--;
                throw Unsupported($"Unexpected '{(token.Kind == TokenKind.End ? "end of template" : token.Value)}' in an expression");
        }
    }

    private Expr ParsePostfix(Expr target)
    {
        while (true)
        {
            var token = Current;
            if (token.IsOperator("."))
            {
                _pos++;
                var name = Current.Kind == TokenKind.Integer ? Next().Value : ExpectName();
                target = new AttributeExpr(target, name, token.Line);
            }
            else if (token.IsOperator("["))
            {
                _pos++;
                target = ParseSubscript(target, token.Line);
            }
            else if (token.IsOperator("("))
            {
                _pos++;
                target = new CallExpr(target, ParseArguments(), token.Line);
            }
            else
            {
                return target;
            }
        }
    }

    private Expr ParseSubscript(Expr target, int line)
    {
        Expr? start = null, stop = null, step = null;
        if (!Current.IsOperator(":"))
        {
            start = ParseExpression();
            if (Accept(TokenKind.Operator, "]"))
            {
                return new IndexExpr(target, start, line);
            }
        }

        Expect(TokenKind.Operator, ":");
        if (!Current.IsOperator(":") && !Current.IsOperator("]"))
        {
            stop = ParseExpression();
        }

        if (Accept(TokenKind.Operator, ":") && !Current.IsOperator("]"))
        {
            step = ParseExpression();
        }

        Expect(TokenKind.Operator, "]");
        return new SliceExpr(target, start, stop, step, line);
    }

    /// <summary>Arguments after an opening parenthesis, up to and including the closing one.</summary>
    private Arguments ParseArguments()
    {
        Enter();
        var positional = new List<Expr>();
        var named = new List<(string, Expr)>();
        while (!Accept(TokenKind.Operator, ")"))
        {
            if (Current.Kind == TokenKind.Name && Peek().IsOperator("="))
            {
                var name = Next().Value;
                _pos++;
                named.Add((name, ParseExpression()));
            }
            else
            {
                positional.Add(ParseExpression());
            }

            if (!Current.IsOperator(")"))
            {
                Expect(TokenKind.Operator, ",");
            }
        }

        _depth--;
        return new Arguments(positional, named);
    }

    private (string Name, Arguments Arguments) ParseFilterCall()
    {
        var line = Current.Line;
        var name = ExpectName();
        if (!JinjaBuiltins.HasFilter(name))
        {
            throw new TemplateNotSupportedException($"The filter '{name}' is not supported", line);
        }

        return (name, Accept(TokenKind.Operator, "(") ? ParseArguments() : Arguments.None);
    }

    private Expr ParseFiltersAndTests(Expr target)
    {
        while (true)
        {
            var token = Current;
            if (token.IsOperator("|"))
            {
                _pos++;
                var (name, args) = ParseFilterCall();
                target = ParsePostfix(new FilterExpr(target, name, args, token.Line));
            }
            else if (token.IsName("is"))
            {
                _pos++;
                var negated = Accept(TokenKind.Name, "not");
                var line = Current.Line;
                var name = ExpectName();
                if (name is "none" or "true" or "false")
                {
                    // 'is none' names a test that shares its name with a literal.
                }
                else if (!JinjaBuiltins.HasTest(name))
                {
                    throw new TemplateNotSupportedException($"The test '{name}' is not supported", line);
                }

                Arguments args;
                if (Accept(TokenKind.Operator, "("))
                {
                    args = ParseArguments();
                }
                else if (Current.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float
                    || (Current.Kind == TokenKind.Name && Current.Value is not ("and" or "or" or "else" or "if" or "in" or "not" or "is")))
                {
                    args = new Arguments([ParsePostfix(ParsePrimary())], []);
                }
                else
                {
                    args = Arguments.None;
                }

                target = new TestExpr(target, name, args, negated, token.Line);
            }
            else
            {
                return target;
            }
        }
    }
}
