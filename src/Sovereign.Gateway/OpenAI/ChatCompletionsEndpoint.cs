using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.OpenAI;

/// <summary><c>POST /v1/chat/completions</c>, streaming and not.</summary>
internal static class ChatCompletionsEndpoint
{
    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant"];

    public static async Task HandleAsync(HttpContext context, InferenceRouter router, LanguageRouting languages, RequestMetering metering, UpstreamProxy proxy, NodeDirectory nodes, IOptions<SovereignOptions> options, TimeProvider time)
    {
        var limits = options.Value.Limits;
        var caller = await router.AuthenticateAsync(context);
        var request = await RequestReader.ReadAsync<ChatCompletionRequest>(context);
        var turns = ValidateMessages(request);
        if (request.MaxTokens is not null && request.MaxCompletionTokens is not null && request.MaxTokens != request.MaxCompletionTokens)
        {
            throw OpenAIException.BadRequest("Set max_tokens or max_completion_tokens, not both with different values.", "max_completion_tokens", "invalid_value");
        }

        var requestedMax = request.MaxCompletionTokens ?? request.MaxTokens;
        var (sampling, maxTokens, stop, n) = RequestReader.ValidateSampling(
            request, requestedMax, request.MaxCompletionTokens is not null ? "max_completion_tokens" : "max_tokens", limits);
        if (request.Logprobs == true)
        {
            throw OpenAIException.BadRequest("logprobs is not supported by this server.", "logprobs", "unsupported_parameter");
        }

        if (request.Tools is { ValueKind: System.Text.Json.JsonValueKind.Array } tools && tools.GetArrayLength() > 0)
        {
            throw OpenAIException.BadRequest("Tool calling is not supported by this model.", "tools", "unsupported_parameter");
        }

        if (request.ResponseFormat?.Type is { } format && format != "text")
        {
            throw OpenAIException.BadRequest($"response_format '{format}' is not supported by this server.", "response_format", "unsupported_parameter");
        }

        var lastUser = turns.LastOrDefault(t => t.Role == "user").Content ?? turns[^1].Content;
        var routed = await RouteAsync(context, router, languages, caller, request.Model, lastUser);
        if (routed.ExternalNode is not null)
        {
            await ExternalForwarding.ForwardAsync(context, routed, router, metering, proxy, nodes, "chat/completions", requestedMax ?? limits.MaxOutputTokens);
            return;
        }

        var model = routed.Local!;
        var llama = model.Model!;
        var prompt = llama.TokenizeChat(turns);
        maxTokens = RequestReader.ClampDefault(requestedMax, maxTokens, prompt.Length, llama.Info.ContextLength);
        var ticket = await metering.AdmitAsync(context, routed, prompt.Length, (long)(maxTokens ?? llama.Info.ContextLength - prompt.Length) * n);
        var choices = Enumerable.Range(0, n)
            .Select(i => new GenerationRequest
            {
                PromptTokens = prompt,
                MaxTokens = maxTokens,
                Stop = stop,
                Sampling = n > 1 && sampling.Seed is { } seed ? sampling with { Seed = seed + i } : sampling,
                Tenant = routed.Caller.TenantId,
                Weight = ticket.Weight,
                Priority = ticket.Priority,
            })
            .ToArray();

        await using var accounting = new LocalAccounting(router, metering, languages, routed, ticket, prompt.Length, lastUser, context.RequestAborted);
        using var run = GenerationRun.Start(model.Batcher!, choices, context.RequestAborted);
        var id = GenerationRun.NewId("chatcmpl-");
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        if (request.Stream == true)
        {
            await StreamAsync(context, run, accounting, id, created, model.Id, n, request.StreamOptions?.IncludeUsage == true, prompt.Length);
            return;
        }

        var results = await run.CollectAsync();
        var completionTokens = results.Sum(r => r.Result.CompletionTokens);
        await accounting.CompleteAsync(results.Select(r => r.Result).ToList());
        await TypedResults.Json(
            new ChatCompletion(id, "chat.completion", created, model.Id,
                results.Select((r, i) => new ChatChoice(i, new AssistantMessage("assistant", r.Text), null, GenerationRun.FinishReasonOf(r.Result.FinishReason))).ToArray(),
                new Usage(prompt.Length, completionTokens, prompt.Length + completionTokens), SystemFingerprint),
            OpenAIJson.Options).ExecuteAsync(context);
    }

    /// <summary>Routes the request; an alias (e.g. <c>auto</c>) first resolves to the best allowed model for the text's language.</summary>
    internal static async Task<RoutedRequest> RouteAsync(HttpContext context, InferenceRouter router, LanguageRouting languages, Caller caller, string? model, string text)
    {
        if (!languages.IsAlias(model))
        {
            return await router.RouteAsync(context, caller, model, ModelKind.Chat);
        }

        var choice = await languages.ChooseAsync(router, caller, model!, text);
        if (!choice.IsRouted)
        {
            throw new OpenAIException(StatusCodes.Status403Forbidden,
                $"No model that your policy allows can serve '{model}' for this request: {choice.Reason}", "permission_error", "model", "model_not_allowed");
        }

        return await router.RouteAsync(context, caller, choice.ModelId, ModelKind.Chat, model, choice);
    }

    /// <summary>Identifies this build in responses, as OpenAI's <c>system_fingerprint</c> does.</summary>
    internal static readonly string SystemFingerprint = "sovereign-" + typeof(ChatCompletionsEndpoint).Assembly.GetName().Version!.ToString(3);

    /// <summary>Streams the choices; the request is metered before the usage chunk and [DONE] are sent.</summary>
    private static async Task StreamAsync(HttpContext context, GenerationRun run, LocalAccounting accounting, string id, long created, string model, int n, bool includeUsage, int promptTokens)
    {
        var response = context.Response;
        var aborted = context.RequestAborted;
        ServerSentEvents.Start(response);
        for (var i = 0; i < n; i++)
        {
            await ServerSentEvents.WriteAsync(response, Chunk(id, created, model, new ChatChunkChoice(i, new ChunkDelta("assistant", ""), null, null)), aborted);
        }

        var completionTokens = 0;
        var results = new List<GenerationResult>();
        try
        {
            await foreach (var (index, update) in run.StreamAsync(aborted))
            {
                if (update.Text.Length > 0)
                {
                    await ServerSentEvents.WriteAsync(response, Chunk(id, created, model, new ChatChunkChoice(index, new ChunkDelta(null, update.Text), null, null)), aborted);
                }

                if (update.Result is { } result)
                {
                    completionTokens += result.CompletionTokens;
                    accounting.CompletionTokens = completionTokens;
                    results.Add(result);
                    await ServerSentEvents.WriteAsync(response, Chunk(id, created, model, new ChatChunkChoice(index, new ChunkDelta(null, null), null, GenerationRun.FinishReasonOf(result.FinishReason))), aborted);
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await ServerSentEvents.WriteAsync(response, new OpenAIErrorEnvelope(OpenAIErrorResults.Map(ex, 0).ToError()), aborted);
            return;
        }

        await accounting.CompleteAsync(results);
        if (includeUsage)
        {
            await ServerSentEvents.WriteAsync(response,
                new ChatCompletionChunk(id, "chat.completion.chunk", created, model, [], SystemFingerprint, new Usage(promptTokens, completionTokens, promptTokens + completionTokens)),
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
