using System.Globalization;
using System.Text.Json;
using Sovereign.Inference.Grammar;

namespace Sovereign.Inference.Tests.Grammar;

public sealed class JsonSchemaGrammarCompilerTests
{
    private static GbnfGrammar Compile(string schema) => JsonSchemaGrammarCompiler.Compile(JsonDocument.Parse(schema).RootElement);

    [Theory]
    [InlineData("""{"type":"string","pattern":"^(a)\\1$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^(?=a)a$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"\\bword\\b"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"a^b"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^\\p{L}+$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^(a$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^[a-$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^a**$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^[\\x00-\\x08]$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^[z-a]$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^[]a]$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^[^]$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^a{3,2}$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^a{2000}$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":7}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^(a*)*$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^(a?){20}$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^(ab|)+$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^x(?:a*b?){2,}$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^(a+)+$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^(\\w+\\s?)*$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^(a{1,30}){1,60}$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^(b|a+)+c$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^((ab)+c?)+$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^(aa?)+$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^a*a*a*a*a*a*$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^.*a.*b.*c.*d.*e$"}""", "pattern", "#")]
    [InlineData("""{"type":"string","pattern":"^[a-z]{5}-[a-z]{5}$","maxLength":8}""", "maxLength", "#")]
    [InlineData("""{"type":"string","pattern":"^[a-z]+$","minLength":3}""", "minLength", "#")]
    [InlineData("""{"type":"string","format":"date","maxLength":8}""", "maxLength", "#")]
    [InlineData("""{"type":"array","prefixItems":[{"type":"null"}],"items":false,"minItems":2}""", "maxItems", "#")]
    [InlineData("""{"type":"array","prefixItems":[]}""", "prefixItems", "#")]
    [InlineData("""{"type":"array","prefixItems":[{"type":"null"}],"items":[{"type":"null"}]}""", "schema", "#/items")]
    [InlineData("""{"type":"integer","multipleOf":3}""", "multipleOf", "#")]
    [InlineData("""{"type":"number","multipleOf":0.25}""", "multipleOf", "#")]
    [InlineData("""{"type":"number","multipleOf":0}""", "multipleOf", "#")]
    [InlineData("""{"type":"string","pattern":"^((((((a{1999}){1999}){1999}){1999}){1999}){1999})$","maxLength":10}""", "maxLength", "#")]
    [InlineData("""{"type":"string","format":"uuid","minLength":40}""", "minLength", "#")]
    [InlineData("""{"oneOf":[{"type":"string"},{"type":"integer"}]}""", "oneOf", "#")]
    [InlineData("""{"oneOf":[{"type":"object","properties":{"k":{"const":"a"}},"required":["k"]},{"type":"object","properties":{"k":{"const":"a"}},"required":["k"]}]}""", "oneOf", "#")]
    [InlineData("""{"oneOf":[{"type":"object","properties":{"k":{"const":1}},"required":["k"]},{"type":"object","properties":{"k":{"const":1.0}},"required":["k"]}]}""", "oneOf", "#")]
    [InlineData("""{"oneOf":[{"type":"object","properties":{"k":{"const":"a"}}},{"type":"object","properties":{"k":{"const":"b"}},"required":["k"]}]}""", "oneOf", "#")]
    [InlineData("""{"type":"object","properties":{"x":{"type":"number","maximum":0.5}}}""", "maximum", "#/properties/x")]
    [InlineData("""{"type":"object","properties":{"x":{"type":"string","format":"iri-reference"}}}""", "format", "#/properties/x")]
    [InlineData("""{"type":"array","uniqueItems":true}""", "uniqueItems", "#")]
    [InlineData("""{"type":"integer","minimum":1e20}""", "minimum", "#")]
    [InlineData("""{"type":"number","exclusiveMinimum":3,"maximum":3}""", "maximum", "#")]
    [InlineData("""{"allOf":[{"type":"string"},{"maxLength":3}]}""", "allOf", "#")]
    [InlineData("""{"$ref":"#/$defs/missing"}""", "$ref", "#")]
    [InlineData("""{"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}""", "$ref", "#/$defs/a")]
    [InlineData("""{"type":"object","properties":{},"required":["x"],"additionalProperties":false}""", "required", "#")]
    [InlineData("""{"type":"frog"}""", "type", "#")]
    [InlineData("""{"$defs":{"n":{"type":"object","properties":{"c":{"$ref":"#/$defs/n"}},"required":["c"]}},"$ref":"#/$defs/n"}""", "$ref", "#")]
    [InlineData("""{"type":"string","minLength":5,"maxLength":2}""", "maxLength", "#")]
    public void Compile_UnsupportedKeyword_NamesKeywordAndPath(string schema, string keyword, string path)
    {
        var error = Assert.Throws<UnsupportedSchemaException>(() => Compile(schema));

        Assert.Equal(keyword, error.Keyword);
        Assert.Equal(path, error.Path);
        Assert.Contains(keyword, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"type":"string","pattern":"^[a-z]+(-[a-z]+)*$","maxLength":40}""")]
    [InlineData("""{"type":"string","pattern":"^(ab|)c?$"}""")]
    [InlineData("""{"type":"string","pattern":"(?:x|y)(?<tail>z+?)"}""")]
    [InlineData("""{"type":"string","pattern":"^[^\"\\\\]{0,8}\\.\\d\\w\\s\\S\\D\\W.$"}""")]
    [InlineData("""{"type":"string","pattern":"^$"}""")]
    [InlineData("""{"type":"string","pattern":"^(ab+)*(c|d)?$"}""")]
    [InlineData("""{"type":"string","pattern":"^([A-Z][a-z]*\\s?)+$"}""")]
    [InlineData("""{"type":"string","pattern":"^[\\w.+-]+@[\\w-]+(\\.[\\w-]+)+$"}""")]
    [InlineData("""{"type":"string","pattern":"^(\\d{1,3}\\.){3}\\d{1,3}$"}""")]
    [InlineData("""{"type":"string","pattern":"^\\w+(\\s\\w+)*$"}""")]
    [InlineData("""{"type":"string","pattern":"^a*a*a*a*b$"}""")]
    [InlineData("""{"type":"string","pattern":"^(2[0-4]|1?[0-9])?[0-9]\\.(2[0-4]|1?[0-9])?[0-9]\\.(2[0-4]|1?[0-9])?[0-9]\\.(ff(:0{1,4})?:)?[0-9]$"}""")]
    [InlineData("""{"type":"string","pattern":"^[a-z]+[a-z0-9]*(_[a-z0-9]+)*$"}""")]
    [InlineData("""{"type":"string","pattern":"^(a?)?(a|)b*$"}""")]
    [InlineData("""{"type":"string","pattern":"^a{2}b{1,}c{0,3}[{}]$"}""")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string","x-order":1,"x-vendor":{"any":"thing"}}}}""")]
    [InlineData("""{"type":"string","format":"date","maxLength":10}""")]
    public void Compile_PatternsFormatsAndExtensions_ParseInOurMatcher(string schema)
    {
        var grammar = Compile(schema);
        Assert.NotNull(GrammarMatcher.For(grammar));
    }

    [Fact]
    public void Compile_RandomPatterns_AreRefusedByNameOrParseInOurMatcher()
    {
        // Patterns come from clients: whatever they hold, the answer is a grammar or a 400 naming 'pattern', never a crash.
        const string Alphabet = "ab09^$.|()[]{}*+?\\-,:<>=!dDwWsSbBuxpk\"\u00e9\u0e01\ud83d\ude00 ";
        var random = new Random(20261205);
        for (var i = 0; i < 5000; i++)
        {
            var pattern = new string(Enumerable.Range(0, random.Next(1, 24)).Select(_ => Alphabet[random.Next(Alphabet.Length)]).ToArray());
            var schema = new System.Text.Json.Nodes.JsonObject { ["type"] = "string", ["pattern"] = pattern };
            if (random.Next(3) == 0)
            {
                schema["maxLength"] = random.Next(0, 40);
            }

            GbnfGrammar grammar;
            try
            {
                grammar = Compile(schema.ToJsonString());
            }
            catch (UnsupportedSchemaException refused)
            {
                Assert.True(refused.Keyword is "pattern" or "maxLength" or "minLength", $"{pattern}: {refused.Keyword}");
                continue;
            }

            Assert.True(GrammarMatcher.For(grammar) is not null, $"{pattern}\n{grammar.Text}");
        }
    }

    [Fact]
    public void Compile_PatternWithMoreThan64SkippableParts_IsRefusedNamingPattern()
    {
        // Every run of parts that may be skipped is expanded at once from each place: 256 'a?' in a row cost 320 ms a
        // token, 499 over half a second, on the decode thread every tenant of the model shares.
        static string Schema(int parts) => new System.Text.Json.Nodes.JsonObject
        {
            ["type"] = "string",
            ["pattern"] = "^" + string.Concat(Enumerable.Repeat("a?", parts)) + "$",
        }.ToJsonString();

        Assert.NotNull(GrammarMatcher.For(Compile(Schema(64))));
        var refused = Assert.Throws<UnsupportedSchemaException>(() => Compile(Schema(65)));
        Assert.Equal("pattern", refused.Keyword);
        Assert.Contains("more than 64 parts that may be skipped", refused.Message, StringComparison.Ordinal);
    }

    private static bool Accepts(GbnfGrammar grammar, string text) =>
        GrammarMatcher.For(grammar)! is var matcher && matcher.Advance(matcher.Start, default, System.Text.Encoding.UTF8.GetBytes(text)) is { State.CanEnd: true };

    [Theory]
    [InlineData("""{"type":"integer","minimum":18}""")]
    [InlineData("""{"type":"integer","minimum":-1234,"maximum":98765}""")]
    [InlineData("""{"type":"integer","exclusiveMinimum":-7,"exclusiveMaximum":3000}""")]
    [InlineData("""{"type":"integer","maximum":-3}""")]
    [InlineData("""{"type":"integer","minimum":100,"maximum":1099}""")]
    [InlineData("""{"type":"integer","minimum":2.5,"exclusiveMinimum":5,"maximum":2000.9}""")]
    [InlineData("""{"type":"number","minimum":0,"maximum":1}""")]
    [InlineData("""{"type":"number","exclusiveMinimum":0}""")]
    [InlineData("""{"type":"number","minimum":-1,"exclusiveMaximum":1}""")]
    [InlineData("""{"type":"number","exclusiveMaximum":-2}""")]
    [InlineData("""{"type":"number","minimum":-20,"maximum":-10}""")]
    [InlineData("""{"type":"number","multipleOf":0.001,"minimum":-20,"maximum":30}""")]
    [InlineData("""{"type":"number","multipleOf":1,"minimum":-20.5,"maximum":30}""")]
    public void Compile_NumericBounds_AcceptExactlyTheNumbersInRange(string schemaJson)
    {
        // Integer minimum/maximum beyond a 1,000-value range, and number bounds, were refused (Pydantic's conint(ge=18),
        // confloat(gt=0)). The grammar must take every numeral it writes in range and none outside it.
        var schema = JsonDocument.Parse(schemaJson).RootElement;
        var grammar = Compile(schemaJson);
        var integer = schema.GetProperty("type").GetString() == "integer";
        decimal? Get(string name) => schema.TryGetProperty(name, out var v) ? v.GetDecimal() : null;
        bool InRange(decimal x) =>
            (Get("multipleOf") is not { } step || x % step == 0) && (Get("minimum") is not { } min || x >= min) && (Get("exclusiveMinimum") is not { } emin || x > emin)
            && (Get("maximum") is not { } max || x <= max) && (Get("exclusiveMaximum") is not { } emax || x < emax);

        var random = new Random(7);
        var candidates = new List<decimal>();
        foreach (var edge in new decimal[] { -100_000, -20_000, -1235, -1234, -1233, -21, -20, -19, -11, -10, -9, -8, -7, -6, -3, -2, -1, 0, 1, 2, 3, 5, 6, 17, 18, 19, 99, 100, 101, 999, 1000, 1099, 1100, 2000, 2999, 3000, 98765, 98766, 1_000_000 })
        {
            candidates.Add(edge);
            candidates.AddRange([edge - 0.5m, edge + 0.5m, edge + 0.001m, edge - 0.001m]);
        }

        for (var i = 0; i < 300; i++)
        {
            candidates.Add(random.Next(-200_000, 200_000));
            candidates.Add(Math.Round((decimal)(random.NextDouble() * 60 - 30), 3));
        }

        foreach (var x in candidates)
        {
            if (integer && x != decimal.Truncate(x) || Get("multipleOf") is { } step && x % step != 0 && random.Next(2) == 0)
            {
                continue;
            }

            var text = x.ToString("0.##########", CultureInfo.InvariantCulture);
            Assert.True(InRange(x) == Accepts(grammar, text), $"{schemaJson}: {text} in range {InRange(x)}");
        }

        Assert.False(Accepts(grammar, "-0"));
        Assert.False(Accepts(grammar, "007"));
    }

    [Theory]
    [InlineData("""{"type":"string","maxLength":2000}""", "maxLength")]
    [InlineData("""{"type":"string","minLength":2000}""", "minLength")]
    [InlineData("""{"type":"array","items":{"type":"null"},"maxItems":2000}""", "maxItems")]
    public void Compile_RepetitionOverLlamaCppsLimit_IsRefused(string schema, string keyword)
    {
        var error = Assert.Throws<UnsupportedSchemaException>(() => Compile(schema));
        Assert.Equal(keyword, error.Keyword);
        Assert.Contains("1999", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"type":"string","minLength":1999,"maxLength":1999}""")]
    [InlineData("""{"type":"array","items":{"type":"null"},"minItems":1999,"maxItems":1999}""")]
    public void Compile_RepetitionAtLlamaCppsLimit_ParsesInBothParsers(string schema)
    {
        var grammar = Compile(schema);
        Assert.NotNull(GrammarMatcher.For(grammar));
    }

    public static TheoryData<string> Oversized()
    {
        // 25 $defs, each using the next twice: 2^25 expansions from 3 KB.
        var chain = new System.Text.StringBuilder("""{"$ref":"#/$defs/d0","$defs":{""");
        for (var i = 0; i < 25; i++)
        {
            chain.Append($$$"""
                "d{{{i}}}":{"type":"object","properties":{"x":{"$ref":"#/$defs/d{{{i + 1}}}"},"y":{"$ref":"#/$defs/d{{{i + 1}}}"}},"required":["x","y"]},
                """);
        }

        chain.Append("""  "d25":{"type":"string"}}}""");
        var wideRecursion = "{\"type\":\"object\",\"properties\":{" + string.Join(",", Enumerable.Range(0, 16).Select(i => $"\"p{i}\":{{\"$ref\":\"#\"}}")) + "}}";
        var hugeEnum = "{\"enum\":[" + string.Join(",", Enumerable.Range(0, 200_000).Select(i => $"\"v{i}\"")) + "]}";
        var manyProperties = "{\"type\":\"object\",\"properties\":{" + string.Join(",", Enumerable.Range(0, 50_000).Select(i => $"\"p{i}\":{{\"type\":\"string\"}}")) + "}}";
        var manyAlternatives = "{\"anyOf\":[" + string.Join(",", Enumerable.Range(0, 30_000).Select(i => $"{{\"const\":{i}}}")) + "]}";
        return new() { chain.ToString(), wideRecursion, hugeEnum, manyProperties, manyAlternatives };
    }

    [Theory]
    [MemberData(nameof(Oversized))]
    public void Compile_SchemaBeyondTheWorkBound_IsRefused_NotCompiled(string schema)
    {
        var error = Assert.Throws<UnsupportedSchemaException>(() => Compile(schema));
        Assert.Equal("schema", error.Keyword);
        Assert.Contains("simplify", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_ManyOptionalProperties_GrowsLinearly_AndKeepsTheirOrder()
    {
        var schema = "{\"type\":\"object\",\"properties\":{" + string.Join(",", Enumerable.Range(0, 1000).Select(i => $"\"p{i}\":{{\"type\":\"boolean\"}}")) + "},\"additionalProperties\":false}";
        var grammar = Compile(schema);
        Assert.True(grammar.Text.Length < 1000 * 200, $"{grammar.Text.Length} characters for 1,000 optional properties");

        var small = GrammarMatcher.For(Compile("""{"type":"object","properties":{"a":{"type":"boolean"},"b":{"type":"boolean"},"c":{"type":"boolean"},"d":{"type":"boolean"}}}"""))!;
        Assert.True(Accepts(small, "{}"));
        Assert.True(Accepts(small, """{"b":true,"d":false}"""));
        Assert.True(Accepts(small, """{"a":true,"b":true,"c":true,"d":true}"""));
        Assert.True(Accepts(small, """{"d":true}"""));
        Assert.False(Accepts(small, """{"d":false,"b":true}"""));
        Assert.False(Accepts(small, """{"b":true,"b":true}"""));
    }

    private static bool Accepts(GrammarMatcher matcher, string text)
    {
        var next = matcher.Advance(matcher.Start, default, System.Text.Encoding.UTF8.GetBytes(text));
        return next is { } state && state.State.CanEnd;
    }

    [Fact]
    public void Compile_Annotations_AreIgnored()
    {
        var plain = Compile("""{"type":"object","properties":{"a":{"type":"boolean"}},"required":["a"]}""");
        var annotated = Compile("""{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"T","description":"d","type":"object","properties":{"a":{"type":"boolean","description":"flag","default":true,"examples":[false]}},"required":["a"]}""");

        Assert.Equal(plain.Text, annotated.Text);
    }

    [Fact]
    public void Compile_EnumAndConst_AreExactLiterals()
    {
        var grammar = Compile("""{"enum":["a\"b",1,null,{"k":[true]}]}""");

        Assert.Contains("\"\\\"a\\\\\\\"b\\\"\"", grammar.Text, StringComparison.Ordinal);
        Assert.Contains("\"{\\\"k\\\":[true]}\"", grammar.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_IntegerRange_EnumeratesExactly()
    {
        var grammar = Compile("""{"type":"integer","minimum":-2,"exclusiveMaximum":2}""");

        Assert.Contains("\"-2\" | \"-1\" | \"0\" | \"1\"", grammar.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("\"2\"", grammar.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_UnboundedString_IsBoundedByTheLimit()
    {
        var grammar = JsonSchemaGrammarCompiler.Compile(JsonDocument.Parse("""{"type":"string"}""").RootElement, new JsonGrammarLimits { MaxStringLength = 7 });

        Assert.Contains("char{0,7}", grammar.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_RecursiveRef_IsUnrolledToTheDepthLimit()
    {
        var schema = JsonDocument.Parse("""{"$defs":{"n":{"type":"object","properties":{"c":{"type":"array","items":{"$ref":"#/$defs/n"}}},"required":["c"]}},"$ref":"#/$defs/n"}""").RootElement;

        var shallow = JsonSchemaGrammarCompiler.Compile(schema, new JsonGrammarLimits { MaxRecursionDepth = 1 });
        var deep = JsonSchemaGrammarCompiler.Compile(schema, new JsonGrammarLimits { MaxRecursionDepth = 3 });

        Assert.Contains("\"[\" space \"]\"", shallow.Text, StringComparison.Ordinal);
        Assert.True(deep.Text.Split('\n').Length > shallow.Text.Split('\n').Length);
    }

    [Fact]
    public void Literal_EscapesQuotesBackslashesAndControls() =>
        Assert.Equal("\"a\\\"b\\\\c\\nd\\x01\"", JsonSchemaGrammarCompiler.Literal("a\"b\\c\nd\u0001"));
}
