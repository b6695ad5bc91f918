using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// <c>POST /tokenize</c> and <c>POST /detokenize</c> with the request and answer shapes of llama-server
/// (<c>content</c>, <c>add_special</c>, <c>with_pieces</c>; <c>tokens</c>) and vLLM (<c>prompt</c> or <c>messages</c>,
/// <c>add_special_tokens</c>; <c>count</c>, <c>max_model_len</c>). Authenticated and routed like inference (the text
/// is content: the residency decision applies); served for models this process runs, and relayed to the node that
/// runs one for a gateway (<see cref="TokenizerRelay"/>). Not metered, but each valid request counts against the
/// tenant's requests-per-minute limit, as on every /v1 endpoint; an invalid one does not, wherever it is found invalid.
/// </summary>
internal static class TokenizerEndpoints
{
    public static void MapTokenizerEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/tokenize", TokenizeAsync);
        endpoints.MapPost("/detokenize", DetokenizeAsync);
    }

    private static async Task<IResult> TokenizeAsync(HttpContext context, InferenceRouter router, RequestMetering metering, TokenizerRelay relay, LanguageRouting languages, IOptions<SovereignOptions> options)
    {
        var caller = await router.AuthenticateAsync(context);
        var request = await RequestReader.ReadAsync<TokenizeRequest>(context, RequestFields.For<TokenizeRequest>(caller, options.Value));
        if (request.Content is not null && request.Prompt is not null)
        {
            // llama-server reads 'content', vLLM 'prompt': with both, which text was counted would be a guess.
            throw OpenAIException.BadRequest("Provide the text as 'content' (llama-server) or 'prompt' (vLLM), not both.", "prompt", "invalid_value");
        }

        var text = request.Content ?? request.Prompt;
        if (text is null && request.Messages is null)
        {
            throw OpenAIException.BadRequest("Provide the text as 'content' (or 'prompt'), or chat 'messages'.", "content", "missing_required_parameter");
        }

        if (text is not null && request.Messages is not null)
        {
            throw OpenAIException.BadRequest("Provide either text or messages, not both.", "messages", "invalid_value");
        }

        // Messages are read as chat completions reads them, before anything is counted: a made-up role or an image part
        // was counted, and calls and names, which the template renders, were left out of the count.
        var turns = request.Messages is { } messages ? ChatCompletionsEndpoint.ValidateMessages(messages) : null;

        // Not metered, so the work is capped before it is spent: counting megabytes costs seconds of CPU.
        var maxBytes = options.Value.Limits.MaxTokenizeBytes;
        var bytes = text is not null
            ? Encoding.UTF8.GetByteCount(text)
            : turns!.Sum(t => (long)Encoding.UTF8.GetByteCount(t.Content)
                + (t.ToolCalls ?? []).Sum(c => (long)Encoding.UTF8.GetByteCount(c.Name) + Encoding.UTF8.GetByteCount(c.Arguments)));
        if (bytes > maxBytes)
        {
            throw OpenAIException.BadRequest(
                string.Create(CultureInfo.InvariantCulture, $"The text to tokenize is {bytes:N0} bytes; one request counts at most {maxBytes:N0} bytes. Count a longer document in parts."),
                text is null ? "messages" : request.Content is not null ? "content" : "prompt", "string_above_max_length");
        }

        await RequireModelNotAliasAsync(languages, request.Model);
        var routed = await router.RouteAsync(context, caller, request.Model, ModelKind.Chat);
        TokenizerRelay.RequireServable(routed, "/tokenize");
        await metering.CountRequestAsync(context, caller);
        return await ServeCountedAsync(context, caller, metering, () => relay.ServeAsync(context, routed, "/tokenize", model =>
        {
            int[] tokens;
            if (turns is not null)
            {
                tokens = model.TokenizeChat(turns);
            }
            else
            {
                // llama-server's add_special defaults to false, vLLM's add_special_tokens to true.
                tokens = model.Tokenize(text!, addBos: request.AddSpecial ?? request.AddSpecialTokens ?? request.Content is null);
            }

            object tokenList = request.WithPieces == true
                ? tokens.Select(t => new TokenPiece(t, Piece(model, t))).ToArray()
                : tokens;
            return Task.FromResult<IResult>(TypedResults.Json(new TokenizeResponse(tokenList, tokens.Length, model.Info.ContextLength), OpenAIJson.Options));
        }));
    }

    private static async Task<IResult> DetokenizeAsync(HttpContext context, InferenceRouter router, RequestMetering metering, TokenizerRelay relay, LanguageRouting languages, IOptions<SovereignOptions> options)
    {
        var caller = await router.AuthenticateAsync(context);
        var request = await RequestReader.ReadAsync<DetokenizeRequest>(context, RequestFields.For<DetokenizeRequest>(caller, options.Value));
        if (request.Tokens is not { } tokens)
        {
            throw OpenAIException.BadRequest("You must provide tokens.", "tokens", "missing_required_parameter");
        }

        await RequireModelNotAliasAsync(languages, request.Model);
        var routed = await router.RouteAsync(context, caller, request.Model, ModelKind.Chat);
        TokenizerRelay.RequireServable(routed, "/detokenize");
        if (routed.Local?.Model is { } local)
        {
            RequireInVocabulary(tokens, local);
        }

        // Relayed, the node checks the ids against its model's vocabulary and refuses them the same way; counted
        // first (the limit refuses before any node works), and given back when the node refuses them.
        await metering.CountRequestAsync(context, caller);
        return await ServeCountedAsync(context, caller, metering, () => relay.ServeAsync(context, routed, "/detokenize", model =>
        {
            RequireInVocabulary(tokens, model);
            var text = model.Detokenize(tokens);
            return Task.FromResult<IResult>(TypedResults.Json(new DetokenizeResponse(text, text), OpenAIJson.Options));
        }));
    }

    /// <summary>
    /// Serves a request already counted; one refused as invalid where it is served (400: a node's own check of the
    /// ids, or this process's after a failover brought it here) is given back, so an invalid request is counted
    /// nowhere, as the checks made before the count on a local route ensure. A relayed invalid request used to cost
    /// the tenant one of its minute's requests.
    /// </summary>
    private static async Task<IResult> ServeCountedAsync(HttpContext context, Caller caller, RequestMetering metering, Func<Task<IResult>> serve)
    {
        try
        {
            return await serve();
        }
        catch (OpenAIException ex) when (ex.Status == StatusCodes.Status400BadRequest)
        {
            await metering.RefundRequestAsync(context, caller);
            throw;
        }
    }

    /// <summary>
    /// An alias (<c>auto</c>) chooses a model per request by the text's language, so which tokenizer counts is not known
    /// from the name: 400 naming <c>model</c>, as /v1/embeddings answers one. It was a 404 "does not exist" for a name
    /// /v1/models lists and chat takes.
    /// </summary>
    private static async Task RequireModelNotAliasAsync(LanguageRouting languages, string? model)
    {
        if (await languages.IsAliasAsync(model))
        {
            throw OpenAIException.BadRequest(
                $"The model '{RequestReader.Shorten(model!)}' is an alias: it chooses a model per request by language, so it has no tokenizer of its own. Name one of the models it chooses from.",
                "model", "model_not_supported");
        }
    }

    private static void RequireInVocabulary(List<int> tokens, LlamaModel model)
    {
        for (var i = 0; i < tokens.Count; i++)
        {
            if (tokens[i] < 0 || tokens[i] >= model.Info.VocabularySize)
            {
                throw OpenAIException.BadRequest($"tokens[{i}] must be a token id between 0 and {model.Info.VocabularySize - 1}.", $"tokens[{i}]", "invalid_value");
            }
        }
    }

    /// <summary>The token's text, or its bytes when they are not valid UTF-8 on their own (llama-server's rule).</summary>
    private static object Piece(LlamaModel model, int token)
    {
        var bytes = model.TokenBytes(token);
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return bytes.Select(b => (int)b).ToArray();
        }
    }
}

internal sealed class TokenizeRequest
{
    public string? Model { get; set; }
    public string? Content { get; set; }
    public string? Prompt { get; set; }
    public List<ChatMessage?>? Messages { get; set; }
    public bool? AddSpecial { get; set; }
    public bool? AddSpecialTokens { get; set; }
    public bool? WithPieces { get; set; }
}

internal sealed class DetokenizeRequest
{
    public string? Model { get; set; }
    public List<int>? Tokens { get; set; }
}

internal sealed record TokenizeResponse(object Tokens, int Count, [property: JsonPropertyName("max_model_len")] int MaxModelLen);

internal sealed record TokenPiece(int Id, object Piece);

/// <summary>llama-server answers <c>content</c>, vLLM <c>prompt</c>: both are given.</summary>
internal sealed record DetokenizeResponse(string Content, string Prompt);
