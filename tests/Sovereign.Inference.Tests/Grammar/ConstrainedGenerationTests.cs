using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Grammar;

namespace Sovereign.Inference.Tests.Grammar;

/// <summary>
/// Grammar-constrained generation on a model with random weights: it has no idea what JSON is, so every valid
/// output is the grammar's doing, and every output must end (random weights never choose to stop on their own).
/// </summary>
public sealed class ConstrainedGenerationTests : IAsyncLifetime
{
    private static readonly EvaluationOptions Strict = new() { RequireFormatValidation = true, OutputFormat = OutputFormat.List };

    private TestEngine _engine = null!;

    public static TheoryData<string, string> Schemas => new()
    {
        {
            "person",
            """{"type":"object","properties":{"name":{"type":"string","maxLength":24},"age":{"type":"integer","minimum":0,"maximum":120},"nick":{"type":["string","null"],"maxLength":8}},"required":["name","age"],"additionalProperties":false}"""
        },
        {
            "enums-anyof-arrays",
            """{"type":"object","properties":{"status":{"enum":["ok","error"]},"kind":{"const":"x"},"value":{"anyOf":[{"type":"number"},{"type":"null"}]},"tags":{"type":"array","items":{"type":"string","maxLength":6},"minItems":1,"maxItems":3}},"required":["status","kind","value","tags"],"additionalProperties":false}"""
        },
        {
            "formats",
            """{"type":"object","properties":{"day":{"type":"string","format":"date"},"at":{"type":"string","format":"date-time"},"id":{"type":"string","format":"uuid"},"clock":{"type":"string","format":"time"}},"required":["day","at","id","clock"]}"""
        },
        {
            "more-formats",
            """{"type":"object","properties":{"mail":{"type":"string","format":"email"},"host":{"type":"string","format":"hostname","x-order":2},"v4":{"type":"string","format":"ipv4"},"v6":{"type":"string","format":"ipv6"},"span":{"type":"string","format":"duration"},"day":{"type":"string","format":"date","maxLength":10}},"required":["mail","host","v4","v6","span","day"]}"""
        },
        {
            "patterns",
            """{"type":"object","properties":{"code":{"type":"string","pattern":"^[A-Z]{2}-\\d{3,5}$"},"slug":{"type":"string","pattern":"^[a-z0-9]+(-[a-z0-9]+)*$","maxLength":40},"quote":{"type":"string","pattern":"^(say|shout) \"[^\"\\\\]{0,8}\"$"},"back":{"type":"string","pattern":"^[a\\\\]{1,4}$"},"ws":{"type":"string","pattern":"^a\\sb$"},"thai":{"type":"string","pattern":"^[ก-ฮ]{1,5}$"},"found":{"type":"string","pattern":"\\w+@(x|y)\\.(com|org)"},"opt":{"type":"string","pattern":"^(ab|)c?$"}},"required":["code","slug","quote","back","ws","thai","found","opt"],"additionalProperties":false}"""
        },
        {
            "ranges",
            """{"type":"object","properties":{"age":{"type":"integer","minimum":18},"temp":{"type":"integer","minimum":-40,"maximum":2000},"debt":{"type":"integer","maximum":-3},"ratio":{"type":"number","minimum":0,"maximum":1},"pos":{"type":"number","exclusiveMinimum":0},"delta":{"type":"number","minimum":-1,"exclusiveMaximum":1},"neg":{"type":"number","exclusiveMaximum":-2}},"required":["age","temp","debt","ratio","pos","delta","neg"],"additionalProperties":false}"""
        },
        {
            // Pydantic's discriminated union: oneOf over $refs, told apart by a const property, with its discriminator.
            "discriminated",
            """{"$defs":{"Cat":{"type":"object","title":"Cat","properties":{"pet_type":{"const":"cat","type":"string"},"meows":{"type":"integer","minimum":0,"maximum":9}},"required":["pet_type","meows"]},"Dog":{"type":"object","title":"Dog","properties":{"pet_type":{"const":"dog","type":"string"},"barks":{"type":"number"}},"required":["pet_type","barks"]},"Lizard":{"type":"object","properties":{"pet_type":{"enum":["lizard"]}},"required":["pet_type"]}},"type":"object","properties":{"pet":{"oneOf":[{"$ref":"#/$defs/Cat"},{"$ref":"#/$defs/Dog"},{"$ref":"#/$defs/Lizard"}],"discriminator":{"propertyName":"pet_type","mapping":{"cat":"#/$defs/Cat","dog":"#/$defs/Dog","lizard":"#/$defs/Lizard"}}}},"required":["pet"]}"""
        },
        {
            // Pydantic's tuple[int, str] and open tuples: prefixItems, with items false, a schema, or absent.
            "tuples",
            """{"type":"object","properties":{"pair":{"type":"array","prefixItems":[{"type":"integer","minimum":0,"maximum":9},{"type":"string","maxLength":5}],"items":false,"minItems":2,"maxItems":2},"open":{"type":"array","prefixItems":[{"const":"x"}],"items":{"type":"boolean"},"maxItems":4},"loose":{"type":"array","prefixItems":[{"type":"null"},{"type":"boolean"}],"maxItems":3},"none":{"type":"array","prefixItems":[{"type":"integer"}],"maxItems":0}},"required":["pair","open","loose","none"]}"""
        },
        {
            "money",
            """{"type":"object","properties":{"price":{"type":"number","multipleOf":0.01,"minimum":0},"qty":{"type":"number","multipleOf":1,"minimum":1,"maximum":50},"rate":{"type":"number","multipleOf":0.1,"exclusiveMinimum":0,"maximum":1},"n":{"type":"integer","multipleOf":1}},"required":["price","qty","rate","n"]}"""
        },
        {
            "defs-and-refs",
            """{"$defs":{"point":{"type":"object","properties":{"x":{"type":"integer"},"y":{"type":"integer"}},"required":["x","y"],"additionalProperties":false}},"type":"object","properties":{"from":{"$ref":"#/$defs/point"},"to":{"allOf":[{"$ref":"#/$defs/point"}]}},"required":["from","to"]}"""
        },
        {
            "recursive",
            """{"$defs":{"node":{"type":"object","properties":{"n":{"type":"string","maxLength":4},"kids":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":1}},"required":["n","kids"]}},"$ref":"#/$defs/node"}"""
        },
        {
            "optional-only",
            """{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"boolean"},"c":{"type":"number","minimum":0}}}"""
        },
        {
            "root-array",
            """{"type":"array","items":{"type":"boolean"},"minItems":2,"maxItems":4}"""
        },
        {
            "map",
            """{"type":"object","additionalProperties":{"type":"integer","minimum":1},"maxProperties":0}"""
        },
    };

    public Task InitializeAsync()
    {
        _engine = new TestEngine(new ModelOptions { Id = "random", Path = TestModels.TinyRandomLlama2, Parallel = 4, ContextLength = 2048, Threads = 1 });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _engine.DisposeAsync();

    private Task<(string Text, GenerationResult Result)> Generate(GbnfGrammar grammar, long seed, float temperature = 1f, int maxTokens = 1500) =>
        _engine.Batcher.Submit(new GenerationRequest
        {
            PromptTokens = _engine.Model.Tokenize("Answer in JSON:"),
            MaxTokens = maxTokens,
            Sampling = new SamplingOptions { Temperature = temperature, Seed = seed },
            Grammar = grammar,
        }).CollectAsync();

    [Theory]
    [MemberData(nameof(Schemas))]
    public async Task Generate_Schema_OutputValidatesAndEndsOnItsOwn(string name, string schemaJson)
    {
        if (name == "map")
        {
            // maxProperties is refused; the map form is tested without it.
            Assert.Equal("maxProperties", Assert.Throws<UnsupportedSchemaException>(() => JsonSchemaGrammarCompiler.Compile(JsonDocument.Parse(schemaJson).RootElement)).Keyword);
            schemaJson = schemaJson.Replace(""","maxProperties":0""", "", StringComparison.Ordinal);
        }

        var grammar = JsonSchemaGrammarCompiler.Compile(JsonDocument.Parse(schemaJson).RootElement);
        var schema = JsonSchema.FromText(schemaJson);
        var outputs = await Task.WhenAll(new long[] { 1, 2, 3, 4 }.Select(seed => Generate(grammar, seed)));
        outputs = [.. outputs, await Generate(grammar, 0, temperature: 0)];

        foreach (var (text, result) in outputs)
        {
            Assert.Equal(FinishReason.Stop, result.FinishReason);
            var instance = JsonNode.Parse(text);
            var evaluation = schema.Evaluate(instance, Strict);
            Assert.True(evaluation.IsValid, $"{name}: {text}\n{string.Join("\n", evaluation.Details.Where(d => d.Errors is not null).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}")))}");
        }

        // The managed matcher chose every masked token; llama.cpp's grammar never had to overrule it.
        Assert.Equal(0, Sovereign.Inference.Sampling.RequestSamplingPipeline.MatcherFallbacks);
    }

    [Fact]
    public async Task Generate_WithPenalties_OutputStillValidates()
    {
        // Penalties remember accepted tokens, so this path draws without accepting and accepts only the kept token.
        var schemaJson = (string)Schemas.Single(row => (string)row[0] == "person")[1]!;
        var grammar = JsonSchemaGrammarCompiler.Compile(JsonDocument.Parse(schemaJson).RootElement);
        var (text, result) = await _engine.Batcher.Submit(new GenerationRequest
        {
            PromptTokens = _engine.Model.Tokenize("Answer in JSON:"),
            MaxTokens = 1500,
            Sampling = new SamplingOptions { Temperature = 1f, Seed = 11, PresencePenalty = 1.5f, FrequencyPenalty = 0.5f },
            Grammar = grammar,
        }).CollectAsync();

        Assert.Equal(FinishReason.Stop, result.FinishReason);
        Assert.True(JsonSchema.FromText(schemaJson).Evaluate(JsonNode.Parse(text), Strict).IsValid, text);
        Assert.Equal(0, Sovereign.Inference.Sampling.RequestSamplingPipeline.MatcherFallbacks);
    }

    [Fact]
    public async Task Generate_AnyJsonObject_IsAnObject()
    {
        var grammar = JsonSchemaGrammarCompiler.AnyJsonObject();
        foreach (var seed in new long[] { 7, 8, 9 })
        {
            var (text, result) = await Generate(grammar, seed);

            Assert.Equal(FinishReason.Stop, result.FinishReason);
            using var document = JsonDocument.Parse(text);
            Assert.Equal(JsonValueKind.Object, document.RootElement.ValueKind);
        }
    }

    [Fact]
    public async Task Generate_TokenLimitBeforeTheGrammarEnds_ReportsLength()
    {
        var grammar = JsonSchemaGrammarCompiler.Compile(JsonDocument.Parse("""{"type":"object","properties":{"s":{"type":"string","minLength":200,"maxLength":200}},"required":["s"]}""").RootElement);

        var (text, result) = await Generate(grammar, 5, maxTokens: 10);

        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal(10, result.CompletionTokens);
        Assert.StartsWith("{", text, StringComparison.Ordinal);
    }
}
