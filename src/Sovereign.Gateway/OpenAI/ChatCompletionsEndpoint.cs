using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Pipeline.Executors;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.OpenAI;

/// <summary><c>POST /v1/chat/completions</c>, streaming and not.</summary>
internal static class ChatCompletionsEndpoint
{
    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant"];

    public static async Task HandleAsync(HttpContext context, RequestPipeline pipeline, IOptions<SovereignOptions> options, TimeProvider time)
    {
        var limits = options.Value.Limits;
        var caller = await pipeline.AuthenticateAsync(context);
        var request = await RequestReader.ReadAsync<ChatCompletionRequest>(context);
        var turns = ValidateMessages(request);
        if (request.MaxTokens is not null && request.MaxCompletionTokens is not null && request.MaxTokens != request.MaxCompletionTokens)
        {
            throw OpenAIException.BadRequest("Set max_tokens or max_completion_tokens, not both with different values.", "max_completion_tokens", "invalid_value");
        }

        var requestedMax = request.MaxCompletionTokens ?? request.MaxTokens;
        var maxTokensParameter = request.MaxCompletionTokens is not null ? "max_completion_tokens" : "max_tokens";
        var (sampling, maxTokens, stop, n) = RequestReader.ValidateSampling(request, requestedMax, maxTokensParameter, limits);
        var topLogprobs = StructuredOutput.ChatTopLogprobs(request.Logprobs, request.TopLogprobs);
        if (request.Tools is { ValueKind: System.Text.Json.JsonValueKind.Array } tools && tools.GetArrayLength() > 0)
        {
            throw OpenAIException.BadRequest("Tool calling is not supported by this model.", "tools", "unsupported_parameter");
        }

        var grammar = StructuredOutput.GrammarFor(request.ResponseFormat);
        var work = new GenerationWorkload
        {
            Model = request.Model,
            LanguageSample = turns.LastOrDefault(t => t.Role == "user").Content ?? turns[^1].Content,
            Endpoint = "chat/completions",
            Turns = turns,
            Sampling = sampling,
            RequestedMaxTokens = requestedMax,
            MaxTokens = maxTokens,
            MaxTokensParameter = maxTokensParameter,
            Stop = stop,
            N = n,
            Stream = request.Stream == true,
            Grammar = grammar,
            TopLogprobs = topLogprobs,
        };
        await using var governed = await pipeline.StartAsync(context, caller, work);
        if (governed.Execution is UpstreamRelay relay)
        {
            await relay.RespondAsync();
            return;
        }

        var local = (LocalGeneration)governed.Execution!;
        var id = GenerationRun.NewId("chatcmpl-");
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var modelId = governed.Route!.Model;
        if (work.Stream)
        {
            await StreamAsync(governed, local, id, created, modelId, request.StreamOptions?.IncludeUsage == true, topLogprobs is not null);
            return;
        }

        var results = await local.Run.CollectAsync();
        var completionTokens = results.Sum(r => r.Result.CompletionTokens);
        await governed.CompleteAsync();
        await TypedResults.Json(
            new ChatCompletion(id, "chat.completion", created, modelId,
                results.Select((r, i) => new ChatChoice(i, new AssistantMessage("assistant", r.Text),
                    topLogprobs is null ? null : StructuredOutput.Chat(r.Logprobs ?? []), GenerationRun.FinishReasonOf(r.Result.FinishReason))).ToArray(),
                Usage.Of(local.PromptTokens, completionTokens, local.CachedTokens), SystemFingerprint),
            OpenAIJson.Options).ExecuteAsync(context);
    }

    /// <summary>Identifies this build in responses, as OpenAI's <c>system_fingerprint</c> does.</summary>
    internal static readonly string SystemFingerprint = "sovereign-" + typeof(ChatCompletionsEndpoint).Assembly.GetName().Version!.ToString(3);

    /// <summary>Streams the choices; the request is accounted for before the usage chunk and [DONE] are sent.</summary>
    private static async Task StreamAsync(GovernedRequest governed, LocalGeneration local, string id, long created, string model, bool includeUsage, bool logprobs)
    {
        var response = governed.Http.Response;
        var aborted = governed.Aborted;
        ServerSentEvents.Start(response);
        for (var i = 0; i < local.Run.Count; i++)
        {
            await ServerSentEvents.WriteAsync(response, Chunk(id, created, model, new ChatChunkChoice(i, new ChunkDelta("assistant", ""), null, null)), aborted);
        }

        var completionTokens = 0;
        try
        {
            await foreach (var (index, update) in local.Run.StreamAsync(aborted))
            {
                if (update.Text.Length > 0 || update.Logprobs is { Count: > 0 })
                {
                    await ServerSentEvents.WriteAsync(response,
                        Chunk(id, created, model, new ChatChunkChoice(index, new ChunkDelta(null, update.Text), logprobs ? StructuredOutput.Chat(update.Logprobs ?? []) : null, null)), aborted);
                }

                if (update.Result is { } result)
                {
                    completionTokens += result.CompletionTokens;
                    await ServerSentEvents.WriteAsync(response, Chunk(id, created, model, new ChatChunkChoice(index, new ChunkDelta(null, null), null, GenerationRun.FinishReasonOf(result.FinishReason))), aborted);
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Headers are sent: the error goes in the stream; the books close (as failed) when the request is disposed.
            await ServerSentEvents.WriteAsync(response, new OpenAIErrorEnvelope(OpenAIErrorResults.Map(ex, 0).ToError()), aborted);
            return;
        }

        await governed.CompleteAsync();
        if (includeUsage)
        {
            await ServerSentEvents.WriteAsync(response,
                new ChatCompletionChunk(id, "chat.completion.chunk", created, model, [], SystemFingerprint, Usage.Of(local.PromptTokens, completionTokens, local.CachedTokens)),
                aborted);
        }

        await ServerSentEvents.WriteDoneAsync(response, aborted);
    }

    private static ChatCompletionChunk Chunk(string id, long created, string model, ChatChunkChoice choice) =>
        new(id, "chat.completion.chunk", created, model, [choice], SystemFingerprint, null);

    private static List<ChatTurn> ValidateMessages(ChatCompletionRequest request)
    {
        if (request.Messages is null)
        {
            throw OpenAIException.BadRequest("You must provide a messages parameter.", "messages", "missing_required_parameter");
        }

        if (request.Messages.Count == 0)
        {
            throw OpenAIException.BadRequest("messages must contain at least one message.", "messages", "invalid_value");
        }

        var turns = new List<ChatTurn>(request.Messages.Count);
        for (var i = 0; i < request.Messages.Count; i++)
        {
            var message = request.Messages[i] ?? throw OpenAIException.BadRequest($"messages[{i}] must be an object.", $"messages[{i}]", "invalid_type");
            if (message.Role is null)
            {
                throw OpenAIException.BadRequest($"messages[{i}].role is required.", $"messages[{i}].role", "missing_required_parameter");
            }

            if (!Roles.Contains(message.Role))
            {
                throw OpenAIException.BadRequest(
                    $"messages[{i}].role '{message.Role}' is not supported; use system, developer, user or assistant.", $"messages[{i}].role", "invalid_value");
            }

            if (message.Content?.UnsupportedPartType is { } part)
            {
                throw OpenAIException.BadRequest($"messages[{i}].content has a '{part}' part; this model accepts text only.", $"messages[{i}].content", "unsupported_content");
            }

            if (message.Content is null && message.Role != "assistant")
            {
                throw OpenAIException.BadRequest($"messages[{i}].content is required.", $"messages[{i}].content", "missing_required_parameter");
            }

            turns.Add(new ChatTurn(message.Role == "developer" ? "system" : message.Role, message.Content?.Text ?? ""));
        }

        return turns;
    }
}
