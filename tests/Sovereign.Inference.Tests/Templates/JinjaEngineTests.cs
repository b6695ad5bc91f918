using System.Text.Json;
using Sovereign.Inference.Templates;

namespace Sovereign.Inference.Tests.Templates;

/// <summary>Python semantics the goldens cannot show (the independent renderer differs there), limits, and refusals.</summary>
public sealed class JinjaEngineTests
{
    private static string Render(string template, object? variables = null)
    {
        var values = variables is null
            ? new Dictionary<string, object?>()
            : JsonSerializer.SerializeToElement(variables).EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
        return JinjaTemplate.Parse(template).Render(values);
    }

    [Theory]
    [InlineData("{{ none }}|{{ true }}|{{ false }}", "None|True|False")]
    [InlineData("{{ [1, 'a', none] }}", "[1, 'a', None]")]
    [InlineData("{{ {'k': 'v'} }}", "{'k': 'v'}")]
    [InlineData("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 10 / 4 }}", "1.0 0.30000000000000004 1e+20 2.5")]
    [InlineData("{{ -7 // 2 }} {{ -7 % 3 }}", "-4 2")]
    [InlineData("{{ undefined_name }}[]", "[]")]
    [InlineData("{{ 'xxhixx'.strip('x') }} {{ 'ab'.upper() ~ 'CD'.lower() }}", "hi ABcd")]
    [InlineData("{{ 'Hello World' | capitalize }}", "Hello world")]
    [InlineData("{{ 'a b'.split(' ', 1) | length }} {{ 'a,b,c'.split(',', 1) | last }}", "2 b,c")]
    [InlineData("{{ 21 is divisibleby(7) }} {{ 'abc' < 'abd' }} {{ 'abc' | list | length }}", "True True 3")]
    [InlineData("{{ {'b': 1, 'a': [1, 2]} | tojson(sort_keys=true) }}", "{\"a\": [1, 2], \"b\": 1}")]
    [InlineData("{{ 'é\"\\n' | tojson }}", "\"é\\\"\\n\"")]
    [InlineData("  {%+ if true %}x{% endif %}", "  x")]
    [InlineData("{% raw %}{{ not rendered }}{% endraw %}", "{{ not rendered }}")]
    [InlineData("{% for a in 'xy' %}{{ loop.cycle('odd', 'even') }}{% endfor %}", "oddeven")]
    [InlineData("{{ (1, 2)[1] }} {{ [3, 4, 5][-1] }} {{ 'abc'[1] }}", "2 5 b")]
    public void Renders_with_python_semantics(string template, string expected) => Assert.Equal(expected, Render(template));

    [Fact]
    public void Json_integers_stay_integers_and_keys_keep_their_order()
    {
        Assert.Equal("{\"z\": 1, \"a\": 2.5} 3", Render("{{ x | tojson }} {{ x.z + 2 }}", new { x = new Dictionary<string, object> { ["z"] = 1, ["a"] = 2.5 } }));
    }

    [Fact]
    public void Raise_exception_is_a_refusal_with_the_templates_message()
    {
        var error = Assert.Throws<TemplateRaisedException>(() => Render("{{ raise_exception('Roles must alternate') }}"));
        Assert.Equal("Roles must alternate", error.Message);
    }

    [Fact]
    public void Strftime_now_formats_the_given_clock()
    {
        var rendered = JinjaTemplate.Parse("{{ strftime_now('%d %b %Y %H:%M') }}").Render(new Dictionary<string, object?>(), time: new TemplateGoldenTests.FixedClock());
        Assert.Equal("26 Jul 2026 12:00", rendered);
    }

    [Theory]
    [InlineData("{% include 'other.jinja' %}", "include")]
    [InlineData("{% extends 'base' %}", "extends")]
    [InlineData("{{ x | no_such_filter }}", "no_such_filter")]
    [InlineData("{{ x is no_such_test }}", "no_such_test")]
    [InlineData("{% if x %}unterminated", "endif")]
    [InlineData("{{ x ", "not closed")]
    public void Constructs_it_does_not_implement_are_refused_at_parse_time(string template, string named)
    {
        var error = Assert.Throws<TemplateNotSupportedException>(() => JinjaTemplate.Parse(template));
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Deep_nesting_is_refused_instead_of_overflowing_the_stack()
    {
        Assert.Throws<TemplateNotSupportedException>(() => JinjaTemplate.Parse("{{ " + new string('(', 5000) + "1" + new string(')', 5000) + " }}"));
    }

    [Fact]
    public void Endless_loops_and_huge_output_and_runaway_recursion_stop_at_the_limits()
    {
        var limits = new TemplateLimits { MaxLoopIterations = 1000, MaxOutputCharacters = 10_000, MaxCallDepth = 16 };
        var loops = JinjaTemplate.Parse("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}");
        Assert.Throws<TemplateLimitException>(() => loops.Render(new Dictionary<string, object?>(), limits));

        var output = JinjaTemplate.Parse("{% for i in range(900) %}{{ 'xxxxxxxxxxxxxxxxxxxx' }}{% endfor %}");
        Assert.Throws<TemplateLimitException>(() => output.Render(new Dictionary<string, object?>(), limits));

        var recursion = JinjaTemplate.Parse("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
        Assert.Throws<TemplateLimitException>(() => recursion.Render(new Dictionary<string, object?>(), limits));
    }

    [Fact]
    public void Using_an_undefined_value_as_an_object_is_a_render_error()
    {
        Assert.Throws<TemplateRenderException>(() => Render("{{ missing.attribute }}"));
        Assert.Throws<TemplateRenderException>(() => Render("{{ 'a' + 1 }}"));
    }
}
