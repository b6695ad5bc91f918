using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using LLama;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Gguf;
using Sovereign.Inference.Templates;
using Sovereign.Inference.Tools;

namespace Sovereign.Inference.Tests.Tools;

/// <summary>
/// Models whose GGUF carries a real-world-style chat template (synthesized with random weights): the template is
/// rendered as written, the call format is chosen from it, and a forced call in that format always parses and
/// validates.
/// </summary>
public sealed class ToolCallGenerationTests : IDisposable
{
    private static readonly string Cases = Path.Combine(AppContext.BaseDirectory, "Templates");

    private const string WeatherSchema =
        """{"type":"object","properties":{"city":{"type":"string","maxLength":20},"unit":{"enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false}""";

    private readonly Gguf.TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private LlamaModel Synthesize(string templateFile, ILogger? logger = null, string? source = null)
    {
        var path = _temp.File(templateFile + ".gguf");
        SyntheticModelBuilder.Write(new SyntheticModelOptions
        {
            Layers = 1,
            EmbeddingLength = 64,
            HeadCount = 2,
            VocabularySize = 400,
            ContextLength = 8192,
            TensorType = GgmlType.F32,
            ChatTemplate = source ?? File.ReadAllText(Path.Combine(Cases, "Cases", templateFile)),
        }, path);
        return LlamaModel.Load(new ModelOptions { Id = templateFile, Path = path, ContextLength = 8192, Parallel = 1, Threads = 1 }, logger: logger);
    }

    /// <summary>The turns and tools of a golden context, as the gateway hands them to the model.</summary>
    private static (List<ChatTurn> Turns, List<JsonElement> Tools) Conversation(string contextFile)
    {
        using var context = JsonDocument.Parse(File.ReadAllText(Path.Combine(Cases, "Contexts", contextFile)));
        var turns = new List<ChatTurn>();
        foreach (var message in context.RootElement.GetProperty("messages").EnumerateArray())
        {
            var content = message.GetProperty("content");
            turns.Add(new ChatTurn(message.GetProperty("role").GetString()!, content.ValueKind == JsonValueKind.String ? content.GetString()! : "")
            {
                ToolCalls = message.TryGetProperty("tool_calls", out var calls)
                    ? [.. calls.EnumerateArray().Select(c => new ChatToolCall(c.GetProperty("id").GetString()!, c.GetProperty("function").GetProperty("name").GetString()!,
                        c.GetProperty("function").GetProperty("arguments").GetRawText()))]
                    : null,
                ToolCallId = message.TryGetProperty("tool_call_id", out var id) ? id.GetString() : null,
                Name = message.TryGetProperty("name", out var name) ? name.GetString() : null,
            });
        }

        return (turns, [.. context.RootElement.GetProperty("tools").EnumerateArray().Select(t => t.Clone())]);
    }

    [Theory]
    [InlineData("llama31-tools.jinja", "tools-single.json", ToolCallFormat.Llama3Json)]
    [InlineData("mistral-tools.jinja", "tools-mistral.json", ToolCallFormat.Mistral)]
    [InlineData("qwen25-tools.jinja", "tools.json", ToolCallFormat.Hermes)]
    [InlineData("hermes-tools.jinja", "tools.json", ToolCallFormat.Hermes)]
    public async Task A_forced_call_in_the_templates_format_always_parses_and_validates(string template, string context, ToolCallFormat format)
    {
        using var model = Synthesize(template);
        Assert.Equal("jinja", model.Info.ChatTemplateRenderer);
        Assert.Equal(format, model.Info.ToolCallFormat);

        var (turns, tools) = Conversation(context);
        var prompt = model.TokenizeChat(turns, new ChatPromptOptions { Tools = tools });
        Assert.Contains("convert_temperature", model.RenderChat(turns, new ChatPromptOptions { Tools = tools }), StringComparison.Ordinal);

        using var schema = JsonDocument.Parse(WeatherSchema);
        var grammar = ToolCallSyntax.Grammar(format, [new ToolFunction("get_weather", schema.RootElement)]);
        await using var batcher = new ContinuousBatcher(model, new EngineMetrics(), NullLogger<ContinuousBatcher>.Instance);
        foreach (var seed in new long[] { 1, 2, 3 })
        {
            var (text, result) = await batcher.Submit(new GenerationRequest
            {
                PromptTokens = prompt,
                MaxTokens = 400,
                Sampling = new SamplingOptions { Seed = seed },
                Grammar = grammar,
            }).CollectAsync();

            Assert.Equal(FinishReason.Stop, result.FinishReason);
            var call = Assert.Single(ToolCallSyntax.Parse(format, text).Calls);
            Assert.Equal("get_weather", call.Name);
            Assert.True(JsonSchema.FromText(WeatherSchema).Evaluate(JsonNode.Parse(call.Arguments)).IsValid, text);
        }
    }

    /// <summary>
    /// A call the model writes by itself (here the grammar writes it, so that random weights do) is not cut by a stop
    /// string it contains once its opening is written: the stop ended the text inside the call, and the gateway
    /// answered the template's markup as content with finish_reason "stop". Without the markers it is still cut.
    /// </summary>
    [Theory]
    [InlineData("llama31-tools.jinja", "tools-single.json", ToolCallFormat.Llama3Json)]
    [InlineData("mistral-tools.jinja", "tools-mistral.json", ToolCallFormat.Mistral)]
    [InlineData("qwen25-tools.jinja", "tools.json", ToolCallFormat.Hermes)]
    public async Task A_stop_string_inside_a_call_does_not_cut_it_once_the_call_has_opened(string template, string context, ToolCallFormat format)
    {
        using var model = Synthesize(template);
        var (turns, tools) = Conversation(context);
        var prompt = model.TokenizeChat(turns, new ChatPromptOptions { Tools = tools });
        using var schema = JsonDocument.Parse(WeatherSchema);
        var grammar = ToolCallSyntax.Grammar(format, [new ToolFunction("get_weather", schema.RootElement)]);
        await using var batcher = new ContinuousBatcher(model, new EngineMetrics(), NullLogger<ContinuousBatcher>.Instance);
        GenerationRequest Request(IReadOnlyList<string> exemptFrom) => new()
        {
            PromptTokens = prompt,
            MaxTokens = 400,
            Sampling = new SamplingOptions { Seed = 2 },
            Grammar = grammar,
            Stop = ["\"", "city", "name"],
            StopExemptFrom = exemptFrom,
        };

        var (text, result) = await batcher.Submit(Request(ToolCallSyntax.OpeningMarkers(format))).CollectAsync();
        Assert.Equal(FinishReason.Stop, result.FinishReason);
        var call = Assert.Single(ToolCallSyntax.Parse(format, text).Calls);
        Assert.True(JsonSchema.FromText(WeatherSchema).Evaluate(JsonNode.Parse(call.Arguments)).IsValid, text);

        var (cut, _) = await batcher.Submit(Request([])).CollectAsync();
        Assert.Empty(ToolCallSyntax.Parse(format, cut).Calls);
    }

    [Fact]
    public void A_template_the_engine_refuses_falls_back_to_llama_cpp_and_says_so()
    {
        var logger = new ListLogger();
        using var model = Synthesize("refused", logger, "{% include 'chatml.jinja' %}{{ messages }}");

        Assert.Equal("llama.cpp", model.Info.ChatTemplateRenderer);
        var entry = Assert.Single(logger.Entries, e => e.Id.Id == 2003);
        Assert.Equal(LogLevel.Warning, entry.Level);
        Assert.Contains("include", entry.Message, StringComparison.Ordinal);

        // Tools are still shown to the model, in the system message.
        var (turns, tools) = Conversation("tools-single.json");
        Assert.Contains("<tools>", model.RenderChat(turns[..2], new ChatPromptOptions { Tools = tools }), StringComparison.Ordinal);
    }

    [Fact]
    public void The_built_in_chatml_renders_plain_conversations_exactly_as_llama_cpp_did()
    {
        using var model = LlamaModel.Load(new ModelOptions { Id = "tiny", Path = TestModels.TinyRandomLlama2, ContextLength = 512, Threads = 1 });
        Assert.Equal("jinja", model.Info.ChatTemplateRenderer);
        ChatTurn[] turns = [new("system", "Be brief."), new("user", "Hi"), new("assistant", "Hello!"), new("user", "Ünïcode and \"quotes\"\nnewline")];

        var llamaCpp = new LLamaTemplate("chatml") { AddAssistant = true };
        foreach (var turn in turns)
        {
            llamaCpp.Add(turn.Role, turn.Content);
        }

        Assert.Equal(System.Text.Encoding.UTF8.GetString(llamaCpp.Apply()), model.RenderChat(turns));
    }

    [Fact]
    public void A_template_that_raises_is_the_clients_400_not_a_fallback()
    {
        using var model = Synthesize("mistral-tools.jinja");
        var error = Assert.Throws<InvalidGenerationRequestException>(() => model.RenderChat([new("user", "a"), new("user", "b")]));
        Assert.Equal("messages", error.Parameter);
        Assert.Contains("alternate", error.Message, StringComparison.Ordinal);
    }

    private sealed class ListLogger : ILogger
    {
        public List<(LogLevel Level, EventId Id, string Message)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Entries.Add((logLevel, eventId, formatter(state, exception)));
    }
}
