using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Gguf;
using Sovereign.Inference.Tests.Gguf;
using Sovereign.Inference.Grammar;
using Sovereign.Inference.Sampling;
using Sovereign.Inference.Templates;
using Sovereign.Inference.Tools;

namespace Sovereign.Inference.Tests.Tools;

/// <summary>
/// Calls a model makes by itself (<c>tool_choice: auto</c>) under a lazy grammar: free until the call's opening marker,
/// then held to a well-formed call whose arguments follow a strict function's schema. Random weights never open a call
/// by themselves, so <see cref="ContinuousBatcher.BeforeFreeSample"/> stands in for a model that does: it raises the
/// marker's tokens in the free logits (and the end of generation after them); everything from the marker on is sampled
/// from the model's own logits under the grammar. Without the grammar (before it existed) the same requests wrote the
/// marker and then gibberish, which no parser reads as a call.
/// </summary>
public sealed class LazyToolCallGrammarTests : IDisposable
{
    private static readonly string Cases = Path.Combine(AppContext.BaseDirectory, "Templates");

    private const string WeatherSchema =
        """{"type":"object","properties":{"city":{"type":"string","maxLength":20},"unit":{"enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false}""";

    private const string WeatherTool =
        """{"type":"function","function":{"name":"get_weather","description":"Weather in a city.","parameters":""" + WeatherSchema + "}}";

    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private LlamaModel Synthesize(string templateFile)
    {
        var path = _temp.File(templateFile + ".gguf");
        SyntheticModelBuilder.Write(new SyntheticModelOptions
        {
            Layers = 1,
            EmbeddingLength = 64,
            HeadCount = 2,
            VocabularySize = 400,
            ContextLength = 4096,
            TensorType = GgmlType.F32,
            ChatTemplate = File.ReadAllText(Path.Combine(Cases, "Cases", templateFile)),
        }, path);
        return LlamaModel.Load(new ModelOptions { Id = templateFile, Path = path, ContextLength = 4096, Parallel = 1, Threads = 1, PrefixCacheSequences = 0 });
    }

    private static int[] Prompt(LlamaModel model)
    {
        using var tool = JsonDocument.Parse(WeatherTool);
        return model.TokenizeChat([new ChatTurn("user", "What is the weather in Paris?")], new ChatPromptOptions { Tools = [tool.RootElement.Clone()] });
    }

    private static ToolFunction Weather(bool strict)
    {
        using var schema = JsonDocument.Parse(WeatherSchema);
        return new ToolFunction("get_weather", schema.RootElement.Clone()) { Strict = strict };
    }

    /// <summary>
    /// A model that writes <paramref name="marker"/> after <paramref name="after"/> free tokens, <paramref name="times"/>
    /// times with <paramref name="between"/> free tokens between them, then ends its turn (as a model trained on its
    /// template does after its calls). Counts the free tokens it was asked about.
    /// </summary>
    private sealed class OpensCalls(LlamaModel model, string marker, int after, int times = 1, int between = 2)
    {
        private readonly int[] _marker = model.Tokenize(marker, addBos: false);
        private readonly int _end = (int)model.Weights.Vocab.EOS!.Value;

        public int FreeTokens { get; private set; }

        public void Nudge(GenerationRequest request, int generated, Span<float> logits)
        {
            var i = FreeTokens++;
            for (var call = 0; call < times; call++)
            {
                var k = i - after - (call * (_marker.Length + between));
                if (k >= 0 && k < _marker.Length)
                {
                    logits[_marker[k]] = 1e4f;
                    return;
                }
            }

            if (i >= after + (times * (_marker.Length + between)) - between)
            {
                logits[_end] = 1e4f;
            }
        }
    }

    [Theory]
    [InlineData("llama31-tools.jinja", ToolCallFormat.Llama3Json, 0)]
    [InlineData("mistral-tools.jinja", ToolCallFormat.Mistral, 0)]
    [InlineData("qwen25-tools.jinja", ToolCallFormat.Hermes, 3)]
    public async Task A_call_the_model_opens_by_itself_follows_the_strict_schema(string template, ToolCallFormat format, int after)
    {
        using var model = Synthesize(template);
        Assert.Equal(format, model.Info.ToolCallFormat);
        var lazy = ToolCallSyntax.LazyCallGrammar(format, [Weather(strict: true)], parallel: false);
        await using var batcher = new ContinuousBatcher(model, new EngineMetrics(), NullLogger<ContinuousBatcher>.Instance);
        foreach (var marker in ToolCallSyntax.OpeningMarkers(format))
        {
            foreach (var seed in new long[] { 1, 2, 3 })
            {
                var opens = new OpensCalls(model, marker, after);
                batcher.BeforeFreeSample = opens.Nudge;
                var (text, result) = await batcher.Submit(new GenerationRequest
                {
                    PromptTokens = Prompt(model),
                    MaxTokens = 400,
                    Sampling = new SamplingOptions { Seed = seed },
                    LazyGrammar = lazy,
                }).CollectAsync();

                Assert.Equal(FinishReason.Stop, result.FinishReason);
                var call = Assert.Single(ToolCallSyntax.Parse(format, text).Calls);
                Assert.Equal("get_weather", call.Name);
                Assert.True(JsonSchema.FromText(WeatherSchema).Evaluate(JsonNode.Parse(call.Arguments)).IsValid, text);
                Assert.Equal(after + Tokens(model, marker), opens.FreeTokens);
            }
        }

        Assert.Equal(0, RequestSamplingPipeline.MatcherFallbacks);
    }

    private static int Tokens(LlamaModel model, string text) => model.Tokenize(text, addBos: false).Length;

    [Fact]
    public async Task Hermes_with_parallel_calls_is_free_again_after_a_call_and_holds_the_next_one_too()
    {
        using var model = Synthesize("qwen25-tools.jinja");
        var lazy = ToolCallSyntax.LazyCallGrammar(ToolCallFormat.Hermes, [Weather(strict: true)], parallel: true);
        await using var batcher = new ContinuousBatcher(model, new EngineMetrics(), NullLogger<ContinuousBatcher>.Instance);
        foreach (var seed in new long[] { 4, 5 })
        {
            var opens = new OpensCalls(model, "<tool_call>", after: 2, times: 2, between: 3);
            batcher.BeforeFreeSample = opens.Nudge;
            var (text, result) = await batcher.Submit(new GenerationRequest
            {
                PromptTokens = Prompt(model),
                MaxTokens = 600,
                Sampling = new SamplingOptions { Seed = seed },
                LazyGrammar = lazy,
            }).CollectAsync();

            Assert.Equal(FinishReason.Stop, result.FinishReason);
            var calls = ToolCallSyntax.Parse(ToolCallFormat.Hermes, text).Calls;
            Assert.Equal(2, calls.Count);
            Assert.All(calls, call => Assert.True(JsonSchema.FromText(WeatherSchema).Evaluate(JsonNode.Parse(call.Arguments)).IsValid, text));

            // Free after each call: the tokens between the calls and the end were the model's own (the hook saw them).
            Assert.Equal(2 + (2 * Tokens(model, "<tool_call>")) + 3 + 1, opens.FreeTokens);
        }
    }

    [Fact]
    public async Task Without_parallel_calls_a_Hermes_answer_ends_with_its_call()
    {
        using var model = Synthesize("qwen25-tools.jinja");
        var lazy = ToolCallSyntax.LazyCallGrammar(ToolCallFormat.Hermes, [Weather(strict: true)], parallel: false);
        await using var batcher = new ContinuousBatcher(model, new EngineMetrics(), NullLogger<ContinuousBatcher>.Instance);

        // The hook would open a second call, but after the first only the end is allowed: the hook is not asked again.
        var opens = new OpensCalls(model, "<tool_call>", after: 2, times: 2, between: 3);
        batcher.BeforeFreeSample = opens.Nudge;
        var (text, result) = await batcher.Submit(new GenerationRequest
        {
            PromptTokens = Prompt(model),
            MaxTokens = 600,
            Sampling = new SamplingOptions { Seed = 6 },
            LazyGrammar = lazy,
        }).CollectAsync();

        Assert.Equal(FinishReason.Stop, result.FinishReason);
        Assert.Single(ToolCallSyntax.Parse(ToolCallFormat.Hermes, text).Calls);
        Assert.EndsWith("</tool_call>", text, StringComparison.Ordinal);
        Assert.Equal(2 + Tokens(model, "<tool_call>"), opens.FreeTokens);
    }

    [Fact]
    public async Task A_call_of_a_function_that_is_not_strict_is_any_JSON_object()
    {
        using var model = Synthesize("qwen25-tools.jinja");
        var lazy = ToolCallSyntax.LazyCallGrammar(ToolCallFormat.Hermes, [Weather(strict: false)], parallel: false);
        await using var batcher = new ContinuousBatcher(model, new EngineMetrics(), NullLogger<ContinuousBatcher>.Instance);
        batcher.BeforeFreeSample = new OpensCalls(model, "<tool_call>", after: 1).Nudge;
        var (text, result) = await batcher.Submit(new GenerationRequest
        {
            PromptTokens = Prompt(model),
            MaxTokens = 600,
            Sampling = new SamplingOptions { Seed = 7 },
            LazyGrammar = lazy,
        }).CollectAsync();

        Assert.Equal(FinishReason.Stop, result.FinishReason);
        var call = Assert.Single(ToolCallSyntax.Parse(ToolCallFormat.Hermes, text).Calls);
        Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(call.Arguments).RootElement.ValueKind);
    }

    [Theory]
    [InlineData("llama31-tools.jinja", ToolCallFormat.Llama3Json)]
    [InlineData("mistral-tools.jinja", ToolCallFormat.Mistral)]
    [InlineData("qwen25-tools.jinja", ToolCallFormat.Hermes)]
    public async Task Text_that_opens_no_call_is_sampled_exactly_as_without_the_grammar(string template, ToolCallFormat format)
    {
        using var model = Synthesize(template);
        var lazy = ToolCallSyntax.LazyCallGrammar(format, [Weather(strict: true)], parallel: true);
        await using var batcher = new ContinuousBatcher(model, new EngineMetrics(), NullLogger<ContinuousBatcher>.Instance);
        foreach (var sampling in new[] { new SamplingOptions { Seed = 11 }, new SamplingOptions { Seed = 12, Temperature = 0.7f, TopP = 0.9f }, SamplingOptions.Greedy })
        {
            GenerationRequest Request(LazyGrammar? grammar) => new()
            {
                PromptTokens = Prompt(model),
                MaxTokens = 48,
                Sampling = sampling,
                LazyGrammar = grammar,
            };

            var (free, _) = await batcher.Submit(Request(null)).CollectAsync();
            var (watched, _) = await batcher.Submit(Request(lazy)).CollectAsync();
            Assert.Equal(free, watched);
        }
    }

    [Fact]
    public void A_grammar_is_kept_for_the_same_tools_and_built_anew_for_others()
    {
        var first = ToolCallSyntax.LazyCallGrammar(ToolCallFormat.Hermes, [Weather(strict: true)], parallel: true);
        Assert.Same(first, ToolCallSyntax.LazyCallGrammar(ToolCallFormat.Hermes, [Weather(strict: true)], parallel: true));

        var loose = ToolCallSyntax.LazyCallGrammar(ToolCallFormat.Hermes, [Weather(strict: false)], parallel: true);
        Assert.NotEqual(first.Grammar.Text, loose.Grammar.Text);
        Assert.DoesNotContain("celsius", loose.Grammar.Text, StringComparison.Ordinal);
        Assert.False(ToolCallSyntax.LazyCallGrammar(ToolCallFormat.Hermes, [Weather(strict: true)], parallel: false).Rearm);
        Assert.NotEqual(first.Grammar.Text, ToolCallSyntax.LazyCallGrammar(ToolCallFormat.Mistral, [Weather(strict: true)], parallel: true).Grammar.Text);
    }

    [Theory]
    [InlineData("<tool_call>", false, "ab<tool_", "call>\n{", "<tool_call>\n{")]
    [InlineData("<tool_call>", false, "x", "<tool_call>", "<tool_call>")]
    [InlineData("{\"name\"", true, "  {\"na", "me\": ", "{\"name\": ")]
    [InlineData("{\"name\"", true, "Sure: ", "{\"name\"", null)]
    public void The_watch_finds_a_trigger_across_tokens_and_returns_the_output_from_it(string trigger, bool atStart, string first, string second, string? opened)
    {
        var watch = new TriggerWatch([trigger], atStart);
        Assert.Null(watch.Add(System.Text.Encoding.UTF8.GetBytes(first)));
        var found = watch.Add(System.Text.Encoding.UTF8.GetBytes(second));
        Assert.Equal(opened, found is null ? null : System.Text.Encoding.UTF8.GetString(found));
    }
}
