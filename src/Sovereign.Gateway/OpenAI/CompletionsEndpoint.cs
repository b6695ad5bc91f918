using System.Text.Json;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.OpenAI;

/// <summary><c>POST /v1/completions</c>: the legacy text completion API, streaming and not.</summary>
internal static class CompletionsEndpoint
{
    private const int MaxPrompts = 64;

    public static async Task HandleAsync(HttpContext context, InferenceRouter router, LanguageRouting languages, RequestMetering metering, UpstreamProxy proxy, NodeDirectory nodes, IOptions<SovereignOptions> options, TimeProvider time)
    {
        var limits = options.Value.Limits;
        var caller = await router.AuthenticateAsync(context);
        var request = await RequestReader.ReadAsync<CompletionRequest>(context);
        var (sampling, maxTokens, stop, n) = RequestReader.ValidateSampling(request, request.MaxTokens, "max_tokens", limits);
        if (request.Echo == true)
        {
            throw OpenAIException.BadRequest("echo is not supported by this server.", "echo", "unsupported_parameter");
        }

        if (request.Logprobs is not null)
        {
            throw OpenAIException.BadRequest("logprobs is not supported by this server.", "logprobs", "unsupported_parameter");
        }

        if (!string.IsNullOrEmpty(request.Suffix))
        {
            throw OpenAIException.BadRequest("suffix is not supported by this model.", "suffix", "unsupported_parameter");
        }

        if (request.BestOf is { } bestOf && bestOf != n)
        {
            throw OpenAIException.BadRequest("best_of is not supported by this server.", "best_of", "unsupported_parameter");
        }

        var promptText = request.Prompt is { ValueKind: JsonValueKind.String } p ? p.GetString()! : "";
        var routed = await ChatCompletionsEndpoint.RouteAsync(context, router, languages, caller, request.Model, promptText);
        if (routed.ExternalNode is not null)
        {
            await ExternalForwarding.ForwardAsync(context, routed, router, metering, proxy, nodes, "completions", request.MaxTokens ?? limits.MaxOutputTokens);
            return;
        }

        var model = routed.Local!;
        var llama = model.Model!;
        var prompts = ReadPrompts(request.Prompt, llama);
        if (prompts.Count * n > limits.MaxChoices)
        {
            throw OpenAIException.BadRequest($"The number of prompts times n may be at most {limits.MaxChoices}.", "prompt", "invalid_value");
        }

        var promptTokens = prompts.Sum(p => p.Length);
        var maxGenerated = prompts.Sum(p => (long)(RequestReader.ClampDefault(request.MaxTokens, maxTokens, p.Length, llama.Info.ContextLength) ?? llama.Info.ContextLength - p.Length)) * n;
        var ticket = await metering.AdmitAsync(context, routed, promptTokens, maxGenerated);

        // Choice index = prompt index * n + sample index, as OpenAI numbers them.
        var choices = new List<GenerationRequest>();
        foreach (var prompt in prompts)
        {
            var max = RequestReader.ClampDefault(request.MaxTokens, maxTokens, prompt.Length, llama.Info.ContextLength);
            for (var i = 0; i < n; i++)
            {
                choices.Add(new GenerationRequest
                {
                    PromptTokens = prompt,
                    MaxTokens = max,
                    Stop = stop,
                    Sampling = n > 1 && sampling.Seed is { } seed ? sampling with { Seed = seed + i } : sampling,
                    Tenant = routed.Caller.TenantId,
                    Weight = ticket.Weight,
                    Priority = ticket.Priority,
                });
            }
        }

        await using var accounting = new LocalAccounting(router, metering, languages, routed, ticket, promptTokens, promptText, context.RequestAborted);
        using var run = GenerationRun.Start(model.Batcher!, choices, context.RequestAborted);
        var id = GenerationRun.NewId("cmpl-");
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var fingerprint = ChatCompletionsEndpoint.SystemFingerprint;
        if (request.Stream == true)
        {
            var response = context.Response;
            var aborted = context.RequestAborted;
            ServerSentEvents.Start(response);
            var completionTokens = 0;
            var finished = new List<GenerationResult>();
            try
            {
                await foreach (var (index, update) in run.StreamAsync(aborted))
                {
                    if (update.Result is { } result)
                    {
                        completionTokens += result.CompletionTokens;
                        accounting.CompletionTokens = completionTokens;
                        finished.Add(result);
                    }

                    if (update.Text.Length > 0 || update.Result is not null)
                    {
                        var finish = update.Result is { } r ? GenerationRun.FinishReasonOf(r.FinishReason) : null;
                        await ServerSentEvents.WriteAsync(response,
                            new TextCompletion(id, "text_completion", created, model.Id, [new TextChoice(update.Text, index, null, finish)], null, fingerprint), aborted);
                    }
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                await ServerSentEvents.WriteAsync(response, new OpenAIErrorEnvelope(OpenAIErrorResults.Map(ex, 0).ToError()), aborted);
                return;
            }
            await accounting.CompleteAsync(finished);
            if (request.StreamOptions?.IncludeUsage == true)
            {
                await ServerSentEvents.WriteAsync(response,
                    new TextCompletion(id, "text_completion", created, model.Id, [], new Usage(promptTokens, completionTokens, promptTokens + completionTokens), fingerprint), aborted);
            }

            await ServerSentEvents.WriteDoneAsync(response, aborted);
            return;
        }

        var results = await run.CollectAsync();
        var generated = results.Sum(r => r.Result.CompletionTokens);
        await accounting.CompleteAsync(results.Select(r => r.Result).ToList());
        await TypedResults.Json(
            new TextCompletion(id, "text_completion", created, model.Id,
                results.Select((r, i) => new TextChoice(r.Text, i, null, GenerationRun.FinishReasonOf(r.Result.FinishReason))).ToArray(),
                new Usage(promptTokens, generated, promptTokens + generated), fingerprint),
            OpenAIJson.Options).ExecuteAsync(context);
    }

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
                prompts.Add(model.Tokenize(value.GetString()!));
                break;
            case JsonValueKind.Array when value.GetArrayLength() == 0:
                throw OpenAIException.BadRequest("prompt must not be an empty array.", "prompt", "invalid_value");
            case JsonValueKind.Array when value[0].ValueKind == JsonValueKind.Number:
                prompts.Add(ReadTokenIds(value, model, "prompt"));
                break;
            case JsonValueKind.Array:
                var i = 0;
                foreach (var item in value.EnumerateArray())
                {
                    prompts.Add(item.ValueKind switch
                    {
                        JsonValueKind.String => model.Tokenize(item.GetString()!),
                        JsonValueKind.Array => ReadTokenIds(item, model, $"prompt[{i}]"),
                        _ => throw OpenAIException.BadRequest($"prompt[{i}] must be a string or an array of token ids.", $"prompt[{i}]", "invalid_type"),
                    });
                    i++;
                }

                break;
            default:
                throw OpenAIException.BadRequest("prompt must be a string, an array of strings, or an array of token ids.", "prompt", "invalid_type");
        }

        if (prompts.Count > MaxPrompts)
        {
            throw OpenAIException.BadRequest($"At most {MaxPrompts} prompts per request.", "prompt", "invalid_value");
        }

        if (prompts.Any(p => p.Length == 0))
        {
            throw OpenAIException.BadRequest("prompt must not be empty.", "prompt", "invalid_value");
        }

        return prompts;
    }

    private static int[] ReadTokenIds(JsonElement array, LlamaModel model, string param)
    {
        var tokens = new int[array.GetArrayLength()];
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out var token) || token < 0 || token >= model.Info.VocabularySize)
            {
                throw OpenAIException.BadRequest($"{param}[{i}] must be a token id between 0 and {model.Info.VocabularySize - 1}.", param, "invalid_value");
            }

            tokens[i++] = token;
        }

        return tokens;
    }
}
