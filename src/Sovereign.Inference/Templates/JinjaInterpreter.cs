using System.Text;

namespace Sovereign.Inference.Templates;

/// <summary>
/// Executes parsed statements against a context. One instance per render; every evaluation counts against
/// <see cref="TemplateLimits"/>.
/// </summary>
internal sealed class JinjaInterpreter
{
    private readonly TemplateLimits _limits;
    private readonly Stack<StringBuilder> _outputs = new();
    private long _steps;
    private long _written;
    private int _loopIterations;
    private int _callDepth;
    private Scope _scope;

    public JinjaInterpreter(IReadOnlyDictionary<string, object?> globals, TemplateLimits limits)
    {
        _limits = limits;
        _scope = new Scope(null);
        foreach (var (name, value) in globals)
        {
            _scope.Variables[name] = value;
        }
    }

    private enum Flow { Normal, Break, Continue }

    /// <summary>Variables of one level: the template, a loop, a macro call.</summary>
    private sealed class Scope(Scope? parent)
    {
        public Scope? Parent { get; } = parent;

        public Dictionary<string, object?> Variables { get; } = new(StringComparer.Ordinal);

        public bool TryGet(string name, out object? value)
        {
            for (var scope = this; scope is not null; scope = scope.Parent)
            {
                if (scope.Variables.TryGetValue(name, out value))
                {
                    return true;
                }
            }

            value = null;
            return false;
        }
    }

    public string Render(IReadOnlyList<Stmt> body)
    {
        _outputs.Push(new StringBuilder());
        ExecuteBody(body);
        return _outputs.Pop().ToString();
    }

    private void Step()
    {
        if (++_steps > _limits.MaxSteps)
        {
            throw new TemplateLimitException($"The template took more than {_limits.MaxSteps} steps to render.");
        }
    }

    private void Write(string text)
    {
        _written += text.Length;
        if (_written > _limits.MaxOutputCharacters)
        {
            throw new TemplateLimitException($"The template wrote more than {_limits.MaxOutputCharacters} characters.");
        }

        _outputs.Peek().Append(text);
    }

    private Flow ExecuteBody(IReadOnlyList<Stmt> body)
    {
        foreach (var statement in body)
        {
            var flow = Execute(statement);
            if (flow != Flow.Normal)
            {
                return flow;
            }
        }

        return Flow.Normal;
    }

    private Flow Execute(Stmt statement)
    {
        Step();
        switch (statement)
        {
            case TextStmt text:
                Write(text.Text);
                return Flow.Normal;
            case OutputStmt output:
                Write(JinjaValues.ToText(Evaluate(output.Value)));
                return Flow.Normal;
            case IfStmt conditional:
                foreach (var (condition, branch) in conditional.Branches)
                {
                    if (JinjaValues.IsTruthy(Evaluate(condition)))
                    {
                        return ExecuteBody(branch);
                    }
                }

                return conditional.Else is { } otherwise ? ExecuteBody(otherwise) : Flow.Normal;
            case ForStmt loop:
                ExecuteFor(loop);
                return Flow.Normal;
            case SetStmt set:
                ExecuteSet(set);
                return Flow.Normal;
            case SetBlockStmt setBlock:
                _scope.Variables[setBlock.Target] = CaptureBody(setBlock.Body);
                return Flow.Normal;
            case MacroStmt macro:
                _scope.Variables[macro.Name] = DefineMacro(macro, _scope);
                return Flow.Normal;
            case CallBlockStmt callBlock:
                ExecuteCallBlock(callBlock);
                return Flow.Normal;
            case FilterBlockStmt filterBlock:
                var filtered = JinjaBuiltins.Filter(this, filterBlock.Filter, CaptureBody(filterBlock.Body),
                    EvaluateAll(filterBlock.Arguments.Positional), EvaluateNamed(filterBlock.Arguments));
                Write(JinjaValues.ToText(filtered));
                return Flow.Normal;
            case BlockBodyStmt block:
                return ExecuteBody(block.Body);
            case BreakStmt:
                return Flow.Break;
            case ContinueStmt:
                return Flow.Continue;
            default:
                throw new TemplateRenderException($"Unknown statement {statement.GetType().Name}.");
        }
    }

    private string CaptureBody(IReadOnlyList<Stmt> body)
    {
        _outputs.Push(new StringBuilder());
        try
        {
            ExecuteBody(body);
            return _outputs.Peek().ToString();
        }
        finally
        {
            _outputs.Pop();
        }
    }

    private void ExecuteFor(ForStmt loop)
    {
        var items = JinjaBuiltins.Iterate(Evaluate(loop.Iterable));
        var outer = _scope;
        _scope = new Scope(outer);
        try
        {
            if (loop.Filter is not null)
            {
                // A loop filter decides before loop.* is computed, so loop.length counts the kept items only.
                var kept = new List<object?>();
                foreach (var item in items)
                {
                    Assign(loop.Targets, item);
                    if (JinjaValues.IsTruthy(Evaluate(loop.Filter)))
                    {
                        kept.Add(item);
                    }
                }

                items = kept;
            }

            for (var i = 0; i < items.Count; i++)
            {
                if (++_loopIterations > _limits.MaxLoopIterations)
                {
                    throw new TemplateLimitException($"The template ran more than {_limits.MaxLoopIterations} loop iterations.");
                }

                Assign(loop.Targets, items[i]);
                _scope.Variables["loop"] = LoopObject(items, i);
                if (ExecuteBody(loop.Body) == Flow.Break)
                {
                    break;
                }
            }

            if (items.Count == 0 && loop.Else is { } otherwise)
            {
                _scope = outer;
                ExecuteBody(otherwise);
            }
        }
        finally
        {
            _scope = outer;
        }
    }

    private static JinjaDict LoopObject(List<object?> items, int i)
    {
        var count = items.Count;
        return new JinjaDict
        {
            ["index"] = (long)(i + 1),
            ["index0"] = (long)i,
            ["revindex"] = (long)(count - i),
            ["revindex0"] = (long)(count - i - 1),
            ["first"] = i == 0,
            ["last"] = i == count - 1,
            ["length"] = (long)count,
            ["depth"] = 1L,
            ["depth0"] = 0L,
            ["previtem"] = i > 0 ? items[i - 1] : new JinjaUndefined("loop.previtem"),
            ["nextitem"] = i < count - 1 ? items[i + 1] : new JinjaUndefined("loop.nextitem"),
            ["cycle"] = new JinjaCallable("cycle", (args, _) =>
                args.Count == 0 ? throw new TemplateRenderException("loop.cycle needs at least one value.") : args[i % args.Count]),
        };
    }

    private void Assign(IReadOnlyList<string> targets, object? value)
    {
        if (targets.Count == 1)
        {
            _scope.Variables[targets[0]] = value;
            return;
        }

        var parts = value is List<object?> list ? list : value is string s ? s.Select(c => (object?)c.ToString()).ToList() : null;
        if (parts is null || parts.Count != targets.Count)
        {
            throw new TemplateRenderException($"Cannot unpack {JinjaValues.TypeName(value)} into {targets.Count} names.");
        }

        for (var i = 0; i < targets.Count; i++)
        {
            _scope.Variables[targets[i]] = parts[i];
        }
    }

    private void ExecuteSet(SetStmt set)
    {
        var value = Evaluate(set.Value);
        if (set.Attribute is { } attribute)
        {
            if (!_scope.TryGet(set.Targets[0], out var target) || target is not JinjaNamespace ns)
            {
                throw new TemplateRenderException($"Cannot assign attribute '{attribute}' on '{set.Targets[0]}': it is not a namespace.");
            }

            ns.Values[attribute] = value;
            return;
        }

        Assign(set.Targets, value);
    }

    private JinjaCallable DefineMacro(MacroStmt macro, Scope closure)
    {
        var callable = new JinjaCallable(macro.Name, (positional, named) => CallMacro(macro, closure, positional, named, caller: null));
        _macros[callable] = (macro, closure);
        return callable;
    }

    private string CallMacro(MacroStmt macro, Scope closure, List<object?> positional, Dictionary<string, object?> named, JinjaCallable? caller)
    {
        if (++_callDepth > _limits.MaxCallDepth)
        {
            throw new TemplateLimitException($"Macros nest deeper than {_limits.MaxCallDepth} calls.");
        }

        var outer = _scope;
        _scope = new Scope(closure);
        try
        {
            for (var i = 0; i < macro.Parameters.Count; i++)
            {
                var (name, defaultValue) = macro.Parameters[i];
                _scope.Variables[name] = i < positional.Count ? positional[i]
                    : named.TryGetValue(name, out var value) ? value
                    : defaultValue is not null ? Evaluate(defaultValue)
                    : new JinjaUndefined(name);
            }

            if (positional.Count > macro.Parameters.Count)
            {
                throw new TemplateRenderException($"Macro '{macro.Name}' takes {macro.Parameters.Count} arguments, {positional.Count} given.");
            }

            _scope.Variables["varargs"] = new List<object?>();
            _scope.Variables["kwargs"] = new JinjaDict();
            if (caller is not null)
            {
                _scope.Variables["caller"] = caller;
            }

            return CaptureBody(macro.Body);
        }
        finally
        {
            _scope = outer;
            _callDepth--;
        }
    }

    private void ExecuteCallBlock(CallBlockStmt block)
    {
        var callee = Evaluate(block.Call.Callee);
        if (callee is not JinjaCallable || FindMacro(block.Call.Callee) is not { } macro)
        {
            throw new TemplateRenderException("A call block must call a macro.");
        }

        var bodyScope = _scope;
        var caller = new JinjaCallable("caller", (_, _) =>
        {
            var outer = _scope;
            _scope = new Scope(bodyScope);
            try
            {
                return CaptureBody(block.Body);
            }
            finally
            {
                _scope = outer;
            }
        });
        Write(CallMacro(macro.Statement, macro.Closure, EvaluateAll(block.Call.Arguments.Positional), EvaluateNamed(block.Call.Arguments), caller));
    }

    private readonly Dictionary<JinjaCallable, (MacroStmt Statement, Scope Closure)> _macros = [];

    private (MacroStmt Statement, Scope Closure)? FindMacro(Expr callee) =>
        callee is NameExpr name && _scope.TryGet(name.Name, out var value) && value is JinjaCallable callable && _macros.TryGetValue(callable, out var macro)
            ? macro
            : null;

    public object? Evaluate(Expr expression)
    {
        Step();
        switch (expression)
        {
            case LiteralExpr literal:
                return literal.Value;
            case NameExpr name:
                return _scope.TryGet(name.Name, out var value) ? value : new JinjaUndefined(name.Name);
            case ListExpr list:
                return EvaluateAll(list.Items);
            case DictExpr dict:
                var result = new JinjaDict();
                foreach (var (key, item) in dict.Pairs)
                {
                    result[JinjaValues.ToText(Evaluate(key))] = Evaluate(item);
                }

                return result;
            case AttributeExpr attribute:
                return JinjaBuiltins.GetAttribute(Evaluate(attribute.Target), attribute.Name, DescribeTarget(attribute.Target));
            case IndexExpr index:
                return JinjaBuiltins.GetItem(Evaluate(index.Target), Evaluate(index.Index), DescribeTarget(index.Target));
            case SliceExpr slice:
                return JinjaBuiltins.Slice(Evaluate(slice.Target), Optional(slice.Start), Optional(slice.Stop), Optional(slice.Step));
            case CallExpr call:
                return Call(call);
            case FilterExpr filter:
                return JinjaBuiltins.Filter(this, filter.Filter, Evaluate(filter.Target), EvaluateAll(filter.Arguments.Positional), EvaluateNamed(filter.Arguments));
            case TestExpr test:
                var passed = JinjaBuiltins.Test(test.Test, Evaluate(test.Target), EvaluateAll(test.Arguments.Positional));
                return test.Negated ? !passed : passed;
            case UnaryExpr unary:
                var operand = Evaluate(unary.Operand);
                return unary.Operator switch
                {
                    "not" => !JinjaValues.IsTruthy(operand),
                    "-" => operand switch
                    {
                        long l => (object)-l,
                        double d => -d,
                        bool b => b ? -1L : 0L,
                        _ => throw new TemplateRenderException($"Bad operand type for unary -: {JinjaValues.TypeName(operand)}."),
                    },
                    _ => JinjaValues.IsNumber(operand) ? operand : throw new TemplateRenderException($"Bad operand type for unary +: {JinjaValues.TypeName(operand)}."),
                };
            case BinaryExpr binary:
                return EvaluateBinary(binary);
            case ConditionalExpr conditional:
                return JinjaValues.IsTruthy(Evaluate(conditional.Condition))
                    ? Evaluate(conditional.Then)
                    : conditional.Else is { } otherwise ? Evaluate(otherwise) : new JinjaUndefined("conditional");
            default:
                throw new TemplateRenderException($"Unknown expression {expression.GetType().Name}.");
        }
    }

    private static string DescribeTarget(Expr target) => target switch
    {
        NameExpr name => name.Name,
        AttributeExpr attribute => DescribeTarget(attribute.Target) + "." + attribute.Name,
        IndexExpr index => DescribeTarget(index.Target) + "[...]",
        _ => "value",
    };

    private object? Optional(Expr? expression) => expression is null ? null : Evaluate(expression);

    private List<object?> EvaluateAll(IReadOnlyList<Expr> expressions)
    {
        var values = new List<object?>(expressions.Count);
        foreach (var expression in expressions)
        {
            values.Add(Evaluate(expression));
        }

        return values;
    }

    private Dictionary<string, object?> EvaluateNamed(Arguments arguments)
    {
        var named = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in arguments.Named)
        {
            named[name] = Evaluate(value);
        }

        return named;
    }

    private object? Call(CallExpr call)
    {
        var callee = Evaluate(call.Callee);
        if (callee is not JinjaCallable callable)
        {
            throw new TemplateRenderException($"'{DescribeTarget(call.Callee)}' is {JinjaValues.TypeName(callee)}, not callable.");
        }

        return callable.Invoke(EvaluateAll(call.Arguments.Positional), EvaluateNamed(call.Arguments));
    }

    private object? EvaluateBinary(BinaryExpr binary)
    {
        if (binary.Operator == "and")
        {
            var left = Evaluate(binary.Left);
            return JinjaValues.IsTruthy(left) ? Evaluate(binary.Right) : left;
        }

        if (binary.Operator == "or")
        {
            var left = Evaluate(binary.Left);
            return JinjaValues.IsTruthy(left) ? left : Evaluate(binary.Right);
        }

        var a = Evaluate(binary.Left);
        var b = Evaluate(binary.Right);
        return JinjaBuiltins.BinaryOperation(binary.Operator, a, b);
    }
}
