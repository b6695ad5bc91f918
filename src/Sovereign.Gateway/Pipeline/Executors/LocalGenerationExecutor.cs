using System.Text.Json;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Templates;
using Sovereign.Inference.Tools;

namespace Sovereign.Gateway.Pipeline.Executors;

/// <summary>
/// Runs chat and text completions on this process's engine. Measuring tokenizes the prompt on the chosen model and
/// applies the engine's own context rule, so a request that can never run is refused before any reservation; the
/// engine's weighted-fair queue (in <see cref="ContinuousBatcher"/>) admits the sequences.
/// </summary>
internal sealed class LocalGenerationExecutor(IOptions<SovereignOptions> options) : IRequestExecutor
{
    /// <summary>Most prompts in one text-completion request.</summary>
    public const int MaxPrompts = 64;

    public bool Runs(RoutedRequest route, Workload work) => route.Local?.Batcher is not null && work is GenerationWorkload;

    public ValueTask<WorkDemand> MeasureAsync(GovernedRequest request)
    {
        var work = (GenerationWorkload)request.Work;
        var batcher = request.Route!.Local!.Batcher!;
        var model = batcher.Model;
        var prompts = work.Turns is { } turns
            ? [model.TokenizeChatWithin(turns, model.Info.ContextLength - 1, new ChatPromptOptions { Tools = work.Tools?.Definitions }, work.PromptParameter)]
            : ReadPrompts(work.Prompt, model);

        if (work.ReasoningEffort is not null)
        {
            // Ignored, the answer would pass for one given with the effort asked (OpenAI refuses it for models that do not reason).
            throw OpenAIException.BadRequest(
                $"reasoning_effort is not supported by model '{request.Route.Model}': this server's engine has no reasoning effort to set; leave it out.", "reasoning_effort", "unsupported_parameter");
        }

        foreach (var token in work.Sampling.LogitBias.Keys)
        {
            if (token >= model.Info.VocabularySize)
            {
                throw OpenAIException.BadRequest(
                    $"logit_bias names token {token}, which is not a token id of model '{request.Route.Model}' (0 to {model.Info.VocabularySize - 1}).", "logit_bias", "invalid_value");
            }
        }

        // tool_choice required or a named function: the model's own call syntax, arguments valid against the schema.
        var grammar = work.Tools?.GrammarFor(model.Info.ToolCallFormat) ?? work.Grammar;

        // auto: free text, and a call the model opens by itself held to the same syntax from its opening marker on
        // (the arguments to the schema where the function is strict). Not beside response_format, which holds all of it.
        var lazy = grammar is null ? work.Tools?.LazyGrammarFor(model.Info.ToolCallFormat) : null;
        if ((grammar ?? lazy?.Grammar) is { } parsed && Sovereign.Inference.Grammar.GrammarMatcher.For(parsed) is null)
        {
            // Our parser follows llama.cpp's limits: a grammar it refuses, llama.cpp cannot parse either, and a grammar
            // sampler llama.cpp fails to build crashes the process at the first token. Parsed here, on the request's
            // thread, it is also not parsed first on the decode loop's.
            throw OpenAIException.BadRequest("The requested output format compiles to a grammar this server cannot run; simplify the schema.", null, "unsupported_schema");
        }
        if (prompts.Count * work.N > options.Value.Limits.MaxChoices)
        {
            throw OpenAIException.BadRequest($"The number of prompts times n may be at most {options.Value.Limits.MaxChoices}.", "prompt", "invalid_value");
        }

        var limits = new int[prompts.Count];
        long output = 0;
        for (var i = 0; i < prompts.Count; i++)
        {
            // A server default (not the client's choice) is clamped to what the context leaves.
            var max = RequestReader.ClampDefault(work.RequestedMaxTokens, work.MaxTokens, prompts[i].Length, model.Info.ContextLength);
            limits[i] = batcher.ResolveMaxTokens(prompts[i].Length, max, work.PromptParameter, work.MaxTokensParameter);

            output += (long)limits[i] * work.N;
        }

        request.Plan = new Measured(prompts, limits, grammar, lazy, work.Echo ? EchoTexts(work.Prompt!.Value, prompts, model) : null);
        return ValueTask.FromResult(new WorkDemand(prompts.Sum(p => (long)p.Length), output));
    }

    public ValueTask<IExecution> StartAsync(GovernedRequest request)
    {
        var work = (GenerationWorkload)request.Work;
        var measured = (Measured)request.Plan!;
        var ticket = request.Ticket!;
        // Choice index = prompt index * n + sample index, as OpenAI numbers them.
        var choices = new List<GenerationRequest>(measured.Prompts.Count * work.N);
        var cachePartition = PrefixCachePartition.Of(request.Http, request.Caller, work.CacheSalt);
        var toolFormat = request.Route!.Local!.Batcher!.Model.Info.ToolCallFormat;
        for (var p = 0; p < measured.Prompts.Count; p++)
        {
            for (var i = 0; i < work.N; i++)
            {
                choices.Add(new GenerationRequest
                {
                    PromptTokens = measured.Prompts[p],
                    MaxTokens = measured.MaxTokens[p],
                    // A forced call (tool_choice required or a named function) is the whole answer, with no text for
                    // a stop string to end: matched inside the call, one cut it, and its markup came back as content
                    // with finish_reason "stop" and no tool_calls (streamed: a call with arguments that did not parse).
                    // A call the model makes by itself (auto) is exempt from where it opens: text before it still ends
                    // at a stop string.
                    Stop = work.Tools is { ForcesCall: true } ? [] : work.Stop,
                    StopExemptFrom = work.Tools is { ParsesCalls: true } && work.Stop.Count > 0 ? ToolCallSyntax.OpeningMarkers(toolFormat) : [],
                    Sampling = work.N > 1 && work.Sampling.Seed is { } seed ? work.Sampling with { Seed = seed + i } : work.Sampling,
                    Tenant = request.Caller.TenantId,
                    CachePartition = cachePartition,
                    Weight = ticket.Weight,
                    Priority = ticket.Priority,
                    Grammar = measured.Grammar,
                    LazyGrammar = measured.LazyGrammar,
                    TopLogprobs = work.TopLogprobs,
                    // A prompt is scored once, by its first choice; the endpoint gives its scores to the others (each
                    // scored it again, n log-softmax passes over the prompt on the decode thread, and skipped the prefix cache).
                    PromptLogprobs = work.Echo && i == 0 ? work.TopLogprobs : null,
                    PrefillAsScored = work.Echo && work.TopLogprobs is not null,
                });
            }
        }

        var run = GenerationRun.Start(request.Route!.Local!.Batcher!, choices, request.Aborted, request.Route.Completion);
        return ValueTask.FromResult<IExecution>(new LocalGeneration(run, measured.Prompts.Sum(p => p.Length), work.N) { EchoTexts = measured.EchoTexts });
    }

    private sealed record Measured(
        IReadOnlyList<int[]> Prompts, int[] MaxTokens, Sovereign.Inference.Grammar.GbnfGrammar? Grammar, Sovereign.Inference.Grammar.LazyGrammar? LazyGrammar, IReadOnlyList<string>? EchoTexts);

    /// <summary>Each prompt as <c>echo</c> returns it: a string as sent, token ids as the model decodes them (as vLLM does).</summary>
    private static string[] EchoTexts(JsonElement prompt, List<int[]> prompts, LlamaModel model) => prompt.ValueKind switch
    {
        JsonValueKind.String => [prompt.GetString()!],
        JsonValueKind.Array when prompt[0].ValueKind == JsonValueKind.Number => [model.Detokenize(prompts[0])],
        _ => [.. prompt.EnumerateArray().Select((item, i) => item.ValueKind == JsonValueKind.String ? item.GetString()! : model.Detokenize(prompts[i]))],
    };

    /// <summary>A prompt is a string, an array of strings, an array of token ids, or an array of such arrays.</summary>
    private static List<int[]> ReadPrompts(JsonElement? prompt, LlamaModel model)
    {
        if (prompt is not { } value || value.ValueKind == JsonValueKind.Null)
        {
            throw OpenAIException.BadRequest("You must provide a prompt parameter.", "prompt", "missing_required_parameter");
        }

        var prompts = new List<int[]>();
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                prompts.Add(model.TokenizeWithin(value.GetString()!, model.Info.ContextLength - 1));
                break;
            case JsonValueKind.Array when value.GetArrayLength() == 0:
                throw OpenAIException.BadRequest("prompt must not be an empty array.", "prompt", "invalid_value");
            case JsonValueKind.Array when value[0].ValueKind == JsonValueKind.Number:
                prompts.Add(ReadTokenIds(value, model, "prompt"));
                break;
            case JsonValueKind.Array:
                if (value.GetArrayLength() > MaxPrompts)
                {
                    throw OpenAIException.BadRequest($"At most {MaxPrompts} prompts per request.", "prompt", "invalid_value");
                }

                var i = 0;
                foreach (var item in value.EnumerateArray())
                {
                    prompts.Add(item.ValueKind switch
                    {
                        JsonValueKind.String => model.TokenizeWithin(item.GetString()!, model.Info.ContextLength - 1, subject: $"prompt[{i}]"),
                        JsonValueKind.Array => ReadTokenIds(item, model, $"prompt[{i}]"),
                        _ => throw OpenAIException.BadRequest($"prompt[{i}] must be a string or an array of token ids.", $"prompt[{i}]", "invalid_type"),
                    });
                    i++;
                }

                break;
            default:
                throw OpenAIException.BadRequest("prompt must be a string, an array of strings, or an array of token ids.", "prompt", "invalid_type");
        }

        if (prompts.Any(p => p.Length == 0))
        {
            throw OpenAIException.BadRequest("prompt must not be empty.", "prompt", "invalid_value");
        }

        return prompts;
    }

    private static int[] ReadTokenIds(JsonElement array, LlamaModel model, string param)
    {
        var tokens = TextInputs.TokenIds(array, param);
        TextInputs.RequireInVocabulary([tokens], nested: false, param, model.Info.VocabularySize, model.Info.Id);
        return tokens;
    }
}

/// <summary>Generation running on this process's engine; the endpoint reads <see cref="Run"/> and writes the wire format.</summary>
internal sealed class LocalGeneration(GenerationRun run, int promptTokens, int choicesPerPrompt = 1) : IExecution
{
    /// <summary>The choices' token streams.</summary>
    public GenerationRun Run { get; } = run;

    /// <summary>With <c>echo</c>: each prompt's text, which starts its choices' texts; null otherwise.</summary>
    public IReadOnlyList<string>? EchoTexts { get; init; }

    /// <summary>Choices per prompt (<c>n</c>): choice i answers prompt i / n.</summary>
    public int ChoicesPerPrompt { get; } = Math.Max(1, choicesPerPrompt);

    /// <summary>Prompt tokens of the request, every prompt counted once.</summary>
    public int PromptTokens { get; } = promptTokens;

    /// <summary>
    /// Prompt tokens served from the prefix cache, each prompt counted once (as in <see cref="PromptTokens"/>): the
    /// fewest any of its choices reused. Read once the choices have ended.
    /// </summary>
    public int CachedTokens => Run.CachedPromptTokens(choicesPerPrompt);

    public async ValueTask<ExecutedUsage> FinalUsageAsync()
    {
        var results = await Run.FinalResultsAsync();
        if (results.Count == 0)
        {
            // No choice left a result to bill: the engine stopped or failed under every one before it delivered a
            // token (an unstreamed request answered 503 model_unavailable or 500 engine_decode_failed, which SDKs
            // retry). The client received nothing, so its prompt is not billed either.
            return ExecutedUsage.None;
        }

        if (results.All(static r => !r.Admitted))
        {
            // Cancelled while every choice still waited in the model's own queue: the engine never read the prompt, so
            // nothing is billed (as for a request that leaves while it waits for a relayed route). It billed the prompt.
            return ExecutedUsage.None;
        }

        return new ExecutedUsage(PromptTokens, results.Sum(r => r.CompletionTokens), Combine(results), CachedTokens);
    }

    public ValueTask DisposeAsync()
    {
        Run.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>The choices of a request as one: their tokens and compute add up; it lasted as long as the longest.</summary>
    private static GenerationResult? Combine(IReadOnlyList<GenerationResult> results) => results.Count == 0 ? null : new GenerationResult
    {
        FinishReason = results[0].FinishReason,
        PromptTokens = results[0].PromptTokens,
        CachedPromptTokens = results[0].CachedPromptTokens,
        CompletionTokens = results.Sum(r => r.CompletionTokens),
        QueueTime = results.Max(r => r.QueueTime),
        TimeToFirstToken = results.Min(r => r.TimeToFirstToken),
        Duration = results.Max(r => r.Duration),
        ComputeSeconds = results.Sum(r => r.ComputeSeconds),
    };
}
