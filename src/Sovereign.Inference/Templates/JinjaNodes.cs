namespace Sovereign.Inference.Templates;

/// <summary>An expression of the template language.</summary>
internal abstract record Expr(int Line);

internal sealed record LiteralExpr(object? Value, int Line) : Expr(Line);

internal sealed record NameExpr(string Name, int Line) : Expr(Line);

internal sealed record ListExpr(IReadOnlyList<Expr> Items, bool IsTuple, int Line) : Expr(Line);

internal sealed record DictExpr(IReadOnlyList<(Expr Key, Expr Value)> Pairs, int Line) : Expr(Line);

internal sealed record AttributeExpr(Expr Target, string Name, int Line) : Expr(Line);

internal sealed record IndexExpr(Expr Target, Expr Index, int Line) : Expr(Line);

internal sealed record SliceExpr(Expr Target, Expr? Start, Expr? Stop, Expr? Step, int Line) : Expr(Line);

/// <summary>Positional and keyword arguments of a call, filter or test.</summary>
internal sealed record Arguments(IReadOnlyList<Expr> Positional, IReadOnlyList<(string Name, Expr Value)> Named)
{
    public static readonly Arguments None = new([], []);
}

internal sealed record CallExpr(Expr Callee, Arguments Arguments, int Line) : Expr(Line);

internal sealed record FilterExpr(Expr Target, string Filter, Arguments Arguments, int Line) : Expr(Line);

internal sealed record TestExpr(Expr Target, string Test, Arguments Arguments, bool Negated, int Line) : Expr(Line);

internal sealed record UnaryExpr(string Operator, Expr Operand, int Line) : Expr(Line);

/// <summary>Arithmetic, comparison, <c>in</c>/<c>not in</c>, <c>~</c>, and the short-circuit <c>and</c>/<c>or</c>.</summary>
internal sealed record BinaryExpr(string Operator, Expr Left, Expr Right, int Line) : Expr(Line);

internal sealed record ConditionalExpr(Expr Condition, Expr Then, Expr? Else, int Line) : Expr(Line);

/// <summary>A statement of the template: text, output, or a block tag with its body.</summary>
internal abstract record Stmt(int Line);

internal sealed record TextStmt(string Text, int Line) : Stmt(Line);

internal sealed record OutputStmt(Expr Value, int Line) : Stmt(Line);

internal sealed record IfStmt(IReadOnlyList<(Expr Condition, IReadOnlyList<Stmt> Body)> Branches, IReadOnlyList<Stmt>? Else, int Line) : Stmt(Line);

internal sealed record ForStmt(IReadOnlyList<string> Targets, Expr Iterable, Expr? Filter, IReadOnlyList<Stmt> Body, IReadOnlyList<Stmt>? Else, int Line) : Stmt(Line);

/// <summary><c>set a = ...</c>, <c>set a, b = ...</c>, or <c>set ns.attr = ...</c> (<see cref="Attribute"/> set).</summary>
internal sealed record SetStmt(IReadOnlyList<string> Targets, string? Attribute, Expr Value, int Line) : Stmt(Line);

/// <summary><c>{% set name %}...{% endset %}</c>: the rendered body is assigned.</summary>
internal sealed record SetBlockStmt(string Target, IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);

internal sealed record MacroStmt(string Name, IReadOnlyList<(string Name, Expr? Default)> Parameters, IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);

/// <summary><c>{% call macro(args) %}body{% endcall %}</c>: the macro may call <c>caller()</c> to render the body.</summary>
internal sealed record CallBlockStmt(CallExpr Call, IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);

/// <summary><c>{% filter name %}...{% endfilter %}</c>.</summary>
internal sealed record FilterBlockStmt(string Filter, Arguments Arguments, IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);

internal sealed record BreakStmt(int Line) : Stmt(Line);

internal sealed record ContinueStmt(int Line) : Stmt(Line);

/// <summary><c>{% generation %}</c> (Hugging Face's assistant-mask extension): renders its body.</summary>
internal sealed record BlockBodyStmt(IReadOnlyList<Stmt> Body, int Line) : Stmt(Line);
