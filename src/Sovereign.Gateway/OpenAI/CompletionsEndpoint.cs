using System.Text.Json;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Pipeline.Executors;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Sampling;

namespace Sovereign.Gateway.OpenAI;

/// <summary><c>POST /v1/completions</c>: the legacy text completion API, streaming and not.</summary>
internal static class CompletionsEndpoint
{
    /// <summary>OpenAI's default <c>max_tokens</c> for legacy completions.</summary>
    internal const int DefaultMaxTokens = 16;

    public static async Task HandleAsync(HttpContext context, RequestPipeline pipeline, IOptions<SovereignOptions> options, TimeProvider time)
    {
        var limits = options.Value.Limits;
        var caller = await pipeline.AuthenticateForAdmissionAsync(context);
        var request = await RequestReader.ReadAsync<CompletionRequest>(context, RequestFields.For<CompletionRequest>(caller, options.Value));
        // echo with max_tokens 0 scores the prompt alone (OpenAI's legacy API and vLLM allow it; evaluation
        // harnesses send it for log-likelihoods).
        var echo = request.Echo == true;
        // Absent, max_tokens is 16, as OpenAI documents for this API and vLLM applies: it was the rest of the context,
        // written and billed. Still a default, not the client's choice: a prompt near the context's end gets less.
        var maxTokensOrDefault = request.MaxTokens ?? (limits.MaxOutputTokens > 0 ? Math.Min(DefaultMaxTokens, limits.MaxOutputTokens) : DefaultMaxTokens);
        var (sampling, maxTokens, stop, n) = RequestReader.ValidateSampling(request, maxTokensOrDefault, "max_tokens", limits, minMaxTokens: echo ? 0 : 1);
        var topLogprobs = StructuredOutput.CompletionTopLogprobs(request.Logprobs);
        var grammar = StructuredOutput.GrammarFor(request.ResponseFormat);

        if (!string.IsNullOrEmpty(request.Suffix))
        {
            throw OpenAIException.BadRequest("suffix is not supported by this model.", "suffix", "unsupported_parameter");
        }

        if (request.BestOf is { } bestOf && bestOf != n)
        {
            throw OpenAIException.BadRequest("best_of is not supported by this server.", "best_of", "unsupported_parameter");
        }

        if (request.Prompt is not { } prompt || prompt.ValueKind == JsonValueKind.Null)
        {
            throw OpenAIException.BadRequest("You must provide a prompt parameter.", "prompt", "missing_required_parameter");
        }

        var work = new GenerationWorkload
        {
            Model = request.Model,
            LanguageSample = LanguageSampleOf(prompt),
            Endpoint = "completions",
            Prompt = prompt,
            PromptParameter = "prompt",
            Sampling = sampling,
            RequestedMaxTokens = request.MaxTokens,
            MaxTokens = maxTokens,
            Stop = stop,
            N = n,
            Stream = request.Stream == true,
            AwaitsEvidenceBeforeContent = true,
            Grammar = grammar,
            TopLogprobs = topLogprobs,
            Echo = echo,
            CacheSalt = request.CacheSalt,
        };
        // Chosen before the decision, whose entry names it when this process runs the work (response_id).
        var id = GenerationRun.NewId("cmpl-");
        context.Items[InferenceRouter.AnswerIdKey] = new AnswerId(id, EvenWhenRelayed: false);
        await using var governed = await pipeline.StartAsync(context, caller, work);
        if (governed.Execution is UpstreamRelay relay)
        {
            await relay.RespondAsync();
            return;
        }

        var local = (LocalGeneration)governed.Execution!;
        var promptTokens = local.PromptTokens;
        governed.Route!.ResponseId = id; // its outcome entry names it (response_id)
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var fingerprint = ChatCompletionsEndpoint.SystemFingerprint;
        var modelId = governed.Route!.Model;
        if (work.Stream)
        {
            var response = context.Response;
            var aborted = context.RequestAborted;
            ServerSentEvents.Start(response);
            var completionTokens = 0;
            var textOffsets = new int[local.Run.Count];
            var echoed = new bool[local.Run.Count];
            var perPrompt = local.ChoicesPerPrompt;
            // With echo and logprobs each prompt is scored by its first choice only: the scores go to every choice of the
            // prompt, whose first chunk carries them, so the others' updates wait until they have come.
            var sharedScores = local.EchoTexts is not null && topLogprobs is not null && perPrompt > 1 ? new IReadOnlyList<TokenLogprob>?[local.Run.Count / perPrompt] : null;
            var waiting = sharedScores is null ? null : new List<(int Index, GenerationUpdate Update)>();

            async Task WriteAsync(int index, GenerationUpdate update)
            {
                if (update.Result is { } result)
                {
                    completionTokens += result.CompletionTokens;
                }

                // As vLLM streams echo: a choice's first chunk carries its prompt (with the prompt's logprobs, which
                // the engine sends before any generated token) and whatever the update generated.
                var echoText = local.EchoTexts is { } echoTexts && !echoed[index] ? echoTexts[index / perPrompt] : null;
                if (echoText is not null || update.Text.Length > 0 || update.Result is not null || update.Logprobs is { Count: > 0 })
                {
                    var promptLogprobs = echoText is not null && sharedScores is not null ? sharedScores[index / perPrompt] : update.PromptLogprobs;
                    echoed[index] |= echoText is not null;
                    var finish = update.Result is { } r ? GenerationRun.FinishReasonOf(r.FinishReason) : null;
                    var logprobs = topLogprobs is null ? null : StructuredOutput.Completion(promptLogprobs, update.Logprobs, ref textOffsets[index]);
                    await ServerSentEvents.WriteAsync(response,
                        new TextCompletion(id, "text_completion", created, modelId, [new TextChoice(echoText + update.Text, index, logprobs, finish)],
                            request.StreamOptions?.IncludeUsage == true ? ChatCompletionChunk.NoUsageYet : null, fingerprint), aborted);
                }
            }

            try
            {
                if (governed.HoldsContentForEvidence)
                {
                    // A relayed stream: its headers leave while its decision's entry commits; content waits for it (a
                    // commit that fails ends the stream here with audit_unavailable, nothing generated sent).
                    await response.StartAsync(aborted);
                    await governed.EvidenceDurableAsync();
                }

                await foreach (var (index, update) in local.Run.StreamAsync(aborted))
                {
                    if (sharedScores is null)
                    {
                        await WriteAsync(index, update);
                        continue;
                    }

                    var promptIndex = index / perPrompt;
                    if (index % perPrompt == 0 && update.PromptLogprobs is { } scores)
                    {
                        sharedScores[promptIndex] = scores;
                    }

                    if (sharedScores[promptIndex] is null)
                    {
                        waiting!.Add((index, update));
                        continue;
                    }

                    await WriteAsync(index, update);
                    if (index % perPrompt == 0 && update.PromptLogprobs is not null && waiting is not null)
                    {
                        foreach (var held in waiting.Where(w => w.Index / perPrompt == promptIndex).ToList())
                        {
                            waiting.Remove(held);
                            await WriteAsync(held.Index, held.Update);
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                await ServerSentEvents.WriteAsync(response, new OpenAIErrorEnvelope(OpenAIErrorResults.MapStreamed(context, ex).ToError()), aborted);
                return;
            }

            await governed.CompleteAsync();
            if (request.StreamOptions?.IncludeUsage == true)
            {
                await ServerSentEvents.WriteAsync(response,
                    new TextCompletion(id, "text_completion", created, modelId, [], Usage.Of(promptTokens, completionTokens, local.CachedTokens), fingerprint), aborted);
            }

            await ServerSentEvents.WriteDoneAsync(response, aborted);
            return;
        }

        var results = await local.Run.CollectAsync();
        var generated = results.Sum(r => r.Result.CompletionTokens);
        await governed.CompleteAsync();
        await TypedResults.Json(
            new TextCompletion(id, "text_completion", created, modelId,
                results.Select((r, i) =>
                {
                    var offset = 0;
                    var echoText = local.EchoTexts?[i / local.ChoicesPerPrompt];
                    // The prompt's first choice scored it for all of its choices.
                    var promptLogprobs = echoText is null ? null : results[i - i % local.ChoicesPerPrompt].PromptLogprobs;
                    return new TextChoice(echoText + r.Text, i, topLogprobs is null ? null : StructuredOutput.Completion(promptLogprobs, r.Logprobs, ref offset),
                        GenerationRun.FinishReasonOf(r.Result.FinishReason));
                }).ToArray(),
                Usage.Of(promptTokens, generated, local.CachedTokens), fingerprint),
            OpenAIJson.Options).ExecuteAsync(context);
    }

    // The text whose language routes an alias and is recorded with the usage: the prompt, or the first of a batch of
    // prompts (as embeddings take their first input), the others counted in the language tax's share; token ids carry
    // no text.
    private static Sovereign.Languages.PromptText LanguageSampleOf(JsonElement prompt) => prompt.ValueKind switch
    {
        JsonValueKind.String => prompt.GetString()!,
        JsonValueKind.Array when prompt.GetArrayLength() > 0 && prompt[0].ValueKind == JsonValueKind.String =>
            PromptTexts.OfBatch([.. prompt.EnumerateArray().Where(p => p.ValueKind == JsonValueKind.String).Select(p => p.GetString()!)]),
        _ => Sovereign.Languages.PromptText.Empty,
    };
}
