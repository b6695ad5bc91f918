using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Pipeline.Executors;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Sampling;

namespace Sovereign.Gateway.OpenAI;

/// <summary><c>POST /v1/chat/completions</c>, streaming and not.</summary>
internal static class ChatCompletionsEndpoint
{
    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool"];

    /// <summary>What OpenAI's pattern for a message's <c>name</c> allows (<c>^[a-zA-Z0-9_-]+$</c>).</summary>
    private static readonly System.Buffers.SearchValues<char> NameCharacters =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");

    public static async Task HandleAsync(HttpContext context, RequestPipeline pipeline, IOptions<SovereignOptions> options, TimeProvider time)
    {
        var limits = options.Value.Limits;
        var caller = await pipeline.AuthenticateForAdmissionAsync(context);
        var request = await RequestReader.ReadAsync<ChatCompletionRequest>(context, RequestFields.For<ChatCompletionRequest>(caller, options.Value));
        ResponsesTranslation.CheckMetadata(request.Metadata);
        RequestReader.RequireServiceTier(request.ServiceTier);
        RequestReader.RequirePromptCacheRetention(request.PromptCacheRetention);

        // Ignored here, but bounded as on /v1/responses (and relayed as sent): any length was served.
        RequestReader.RequireIdentifier(request.SafetyIdentifier, "safety_identifier");
        RequestReader.RequireIdentifier(request.PromptCacheKey, "prompt_cache_key");
        var turns = ValidateMessages(request.Messages);
        RefuseWhatCannotBeHonoured(request);
        RequirePrediction(request.Prediction);
        if (request.MaxTokens is not null && request.MaxCompletionTokens is not null && request.MaxTokens != request.MaxCompletionTokens)
        {
            throw OpenAIException.BadRequest("Set max_tokens or max_completion_tokens, not both with different values.", "max_completion_tokens", "invalid_value");
        }

        var requestedMax = request.MaxCompletionTokens ?? request.MaxTokens;
        var maxTokensParameter = request.MaxCompletionTokens is not null ? "max_completion_tokens" : "max_tokens";
        var (sampling, maxTokens, stop, n) = RequestReader.ValidateSampling(request, requestedMax, maxTokensParameter, limits);
        var topLogprobs = StructuredOutput.ChatTopLogprobs(request.Logprobs, request.TopLogprobs);
        if (request.ParallelToolCalls is not null && request.Tools is not { ValueKind: not System.Text.Json.JsonValueKind.Null })
        {
            // OpenAI's 400, word for word, as for tool_choice without tools.
            throw OpenAIException.BadRequest(
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.", "parallel_tool_calls", "invalid_value");
        }

        var tools = ChatTools.Read(request.Tools, request.ToolChoice, request.ParallelToolCalls);
        var grammar = StructuredOutput.GrammarFor(request.ResponseFormat);
        if (grammar is not null && tools?.Mode is ToolChoiceMode.Required or ToolChoiceMode.Named)
        {
            throw OpenAIException.BadRequest(
                "response_format cannot be combined with a tool_choice that forces a tool call: the answer is the call.", "tool_choice", "invalid_value");
        }

        if (request.ResponseFormat?.Type is { } formatType)
        {
            // Only a response format reads the messages' texts (an iterator per request otherwise).
            StructuredOutput.RequireJsonMention(formatType, turns.Select(t => t.Content), "messages");
        }

        var work = new GenerationWorkload
        {
            Model = request.Model,
            LanguageSample = PromptTexts.Of(turns, tools),
            Endpoint = "chat/completions",
            Turns = turns,
            Sampling = sampling,
            RequestedMaxTokens = requestedMax,
            MaxTokens = maxTokens,
            MaxTokensParameter = maxTokensParameter,
            Stop = stop,
            N = n,
            Stream = request.Stream == true,
            AwaitsEvidenceBeforeContent = true,
            Grammar = grammar,
            TopLogprobs = topLogprobs,
            Tools = tools,
            ReasoningEffort = request.ReasoningEffort,
            CacheSalt = request.CacheSalt,
        };
        // Chosen before the decision, whose entry names it when this process runs the work (response_id).
        var id = GenerationRun.NewId("chatcmpl-");
        context.Items[InferenceRouter.AnswerIdKey] = new AnswerId(id, EvenWhenRelayed: false);
        await using var governed = await pipeline.StartAsync(context, caller, work);
        if (governed.Execution is UpstreamRelay relay)
        {
            await relay.RespondAsync();
            return;
        }

        var local = (LocalGeneration)governed.Execution!;
        governed.Route!.ResponseId = id; // its outcome entry names it (response_id)
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var modelId = governed.Route!.Model;
        var toolFormat = governed.Route.Local!.Batcher!.Model.Info.ToolCallFormat;
        if (work.Stream)
        {
            await StreamAsync(governed, local, id, created, modelId, request.StreamOptions?.IncludeUsage == true, topLogprobs is not null, tools, toolFormat);
            return;
        }

        var results = await local.Run.CollectAsync();
        var completionTokens = results.Sum(r => r.Result.CompletionTokens);
        await governed.CompleteAsync();
        await TypedResults.Json(
            new ChatCompletion(id, "chat.completion", created, modelId,
                results.Select((r, i) => Choice(i, r.Text, r.Result.FinishReason, topLogprobs is null ? null : r.Logprobs ?? [], tools, toolFormat)).ToArray(),
                Usage.Of(local.PromptTokens, completionTokens, local.CachedTokens), SystemFingerprint),
            OpenAIJson.Options).ExecuteAsync(context);
    }

    /// <summary>One choice; with tools, calls in the text become <c>tool_calls</c> and the finish reason <c>tool_calls</c>.</summary>
    /// <remarks>
    /// The logprobs cover the content returned: with tool calls, the tokens of the text before the calls, not the
    /// call syntax's markup (<c>&lt;tool_call&gt;{"name": ...</c>), which the client never sees as text.
    /// </remarks>
    private static ChatChoice Choice(int index, string text, FinishReason finish, IReadOnlyList<TokenLogprob>? tokens, ChatTools? tools, Inference.Tools.ToolCallFormat format)
    {
        var logprobs = StructuredOutput.Chat(tokens);
        if (tools is { ParsesCalls: true } && finish == FinishReason.Stop && tools.Read(format, text) is { Calls.Count: > 0 } read)
        {
            var calls = read.Calls.Select(c => new ToolCallOut(ChatTools.NewCallId(format), "function", new FunctionCallOut(c.Name, c.Arguments))).ToArray();
            return new ChatChoice(index, new AssistantMessage("assistant", read.Content.Length > 0 ? read.Content : null, calls),
                StructuredOutput.Chat(ContentTokens(tokens, text, read.Content)), "tool_calls");
        }

        if (tools is { ParsesCalls: true } && finish == FinishReason.Length && tools.ReadTruncated(format, text) is { } cut)
        {
            logprobs = StructuredOutput.Chat(ContentTokens(tokens, text, cut.Content));
            // Cut inside a call: the call as far as it got (arguments not valid JSON), never the template's markup.
            var calls = cut.Calls.Select(c => new ToolCallOut(ChatTools.NewCallId(format), "function", new FunctionCallOut(c.Name, c.Arguments))).ToArray();
            return new ChatChoice(index, new AssistantMessage("assistant", cut.Content.Length > 0 ? cut.Content : null, calls.Length > 0 ? calls : null), logprobs, "length");
        }

        return new ChatChoice(index, new AssistantMessage("assistant", text), logprobs, GenerationRun.FinishReasonOf(finish));
    }

    /// <summary>Identifies this build in responses, as OpenAI's <c>system_fingerprint</c> does.</summary>
    internal static readonly string SystemFingerprint = "sovereign-" + typeof(ChatCompletionsEndpoint).Assembly.GetName().Version!.ToString(3);

    /// <summary>Streams the choices; the request is accounted for before the usage chunk and [DONE] are sent.</summary>
    private static async Task StreamAsync(GovernedRequest governed, LocalGeneration local, string id, long created, string model, bool includeUsage, bool logprobs,
        ChatTools? tools, Inference.Tools.ToolCallFormat toolFormat)
    {
        var response = governed.Http.Response;
        var aborted = governed.Aborted;
        ServerSentEvents.Start(response);

        // A forced call is the whole answer, with no text: its role chunk states content null, as OpenAI's does
        // (it said "", the start of a text that never came).
        var role = tools is { ForcesCall: true } ? ChunkDelta.RoleOfACall : new ChunkDelta("assistant", "");
        for (var i = 0; i < local.Run.Count; i++)
        {
            await ServerSentEvents.WriteAsync(response, Chunk(id, created, model, new ChatChunkChoice(i, role, null, null), includeUsage), aborted);
        }

        Observability.FirstTokenMarks.Mark(governed.Http, "event1");
        var completionTokens = 0;
        var firstWritten = false;
        var calls = tools is { ParsesCalls: true } ? new ToolCallStream[local.Run.Count] : null;
        try
        {
            // A relayed stream's role chunk may have left before its decision's entry was durable: content waits for it
            // (a commit that fails ends the stream here with audit_unavailable, nothing generated sent).
            await governed.EvidenceDurableAsync();
            await foreach (var (index, update) in local.Run.StreamAsync(aborted))
            {
                if (calls is not null)
                {
                    // Tool calls: content passes through as it comes; a call goes out once it is complete.
                    var stream = calls[index] ??= new ToolCallStream(tools!, toolFormat);
                    var events = stream.Parser.Push(update.Text);
                    if (update.Result is not null)
                    {
                        events = [.. events, .. stream.Parser.Finish(truncated: update.Result.FinishReason == FinishReason.Length)];
                    }

                    if (logprobs)
                    {
                        stream.Pending.AddRange(update.Logprobs ?? []);
                    }

                    await WriteToolEventsAsync(response, id, created, model, index, stream, events, logprobs, includeUsage, aborted);
                }
                else if (update.Text.Length > 0 || update.Logprobs is { Count: > 0 })
                {
                    if (Observability.FirstTokenMarks.On && !firstWritten)
                    {
                        Observability.FirstTokenMarks.Mark(governed.Http, "content");
                    }

                    await ServerSentEvents.WriteAsync(response,
                        Chunk(id, created, model, new ChatChunkChoice(index, new ChunkDelta(null, update.Text), logprobs ? StructuredOutput.Chat(update.Logprobs ?? []) : null, null), includeUsage), aborted);
                    if (Observability.FirstTokenMarks.On && !firstWritten)
                    {
                        firstWritten = true;
                        Observability.FirstTokenMarks.Mark(governed.Http, "written");
                    }
                }

                if (update.Result is { } result)
                {
                    completionTokens += result.CompletionTokens;
                    var finish = calls?[index] is { CallCount: > 0 } && result.FinishReason == FinishReason.Stop ? "tool_calls" : GenerationRun.FinishReasonOf(result.FinishReason);
                    await ServerSentEvents.WriteAsync(response, Chunk(id, created, model, new ChatChunkChoice(index, new ChunkDelta(null, null), null, finish), includeUsage), aborted);
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Headers are sent: the error goes in the stream; the books close (as failed) when the request is disposed.
            await ServerSentEvents.WriteAsync(response, new OpenAIErrorEnvelope(OpenAIErrorResults.MapStreamed(governed.Http, ex).ToError()), aborted);
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

    /// <summary>
    /// The tokens of <paramref name="text"/> that hold <paramref name="content"/> (what a choice with tool calls returns
    /// as content: the text before the calls, trimmed): those overlapping its place in the text. Content that is not
    /// one piece of the text (text between parallel calls joined to the text before them) keeps every token, as before.
    /// </summary>
    internal static IReadOnlyList<TokenLogprob>? ContentTokens(IReadOnlyList<TokenLogprob>? tokens, string text, string content)
    {
        if (tokens is null || content.Length == 0)
        {
            return tokens is null ? null : [];
        }

        var start = text.IndexOf(content, StringComparison.Ordinal);
        var end = start < 0 ? text.Length : start + content.Length;
        start = Math.Max(start, 0);
        var kept = new List<TokenLogprob>(tokens.Count);
        var at = 0;
        foreach (var token in tokens)
        {
            var length = token.Token.Text.Length;
            if (at < end && at + length > start)
            {
                kept.Add(token);
            }

            at += length;
        }

        return kept;
    }

    /// <summary>The tool-call state of one streamed choice.</summary>
    private sealed class ToolCallStream
    {
        public ToolCallStream(ChatTools tools, Inference.Tools.ToolCallFormat format)
        {
            Tools = tools;
            Format = format;

            // A call is streamed as it is generated only if it will be kept: an offered function, and the first call
            // unless parallel calls are allowed.
            Parser = new(format, name => tools.Offers(name) && (tools.ParallelToolCalls || CallCount == 0));
        }

        public Inference.Tools.ToolCallStreamParser Parser { get; }

        public ChatTools Tools { get; }

        public Inference.Tools.ToolCallFormat Format { get; }

        /// <summary>Calls sent so far; the next call's index.</summary>
        public int CallCount { get; set; }

        /// <summary>Generated tokens whose text has not gone out as content yet (held back, or a call's markup).</summary>
        public List<TokenLogprob> Pending { get; } = [];

        /// <summary>Characters of the first pending token already sent as content.</summary>
        public int PendingSent { get; set; }

        /// <summary>
        /// The pending tokens whose last character <paramref name="content"/> sends, as the chunk's logprobs (the engine
        /// streams a token's logprobs with its last character); tokens before the place the content starts at (a call's
        /// markup, whitespace dropped around calls) are dropped.
        /// </summary>
        public IReadOnlyList<TokenLogprob> TakeFor(string content)
        {
            var pendingText = string.Concat(Pending.Select(t => t.Token.Text));
            var start = pendingText.IndexOf(content, PendingSent, StringComparison.Ordinal);
            if (start < 0)
            {
                return [];
            }

            var end = start + content.Length;
            var taken = new List<TokenLogprob>();
            var at = 0;
            var drop = 0;
            foreach (var token in Pending)
            {
                var tokenEnd = at + token.Token.Text.Length;
                if (tokenEnd > end)
                {
                    break;
                }

                if (tokenEnd > start)
                {
                    taken.Add(token);
                }

                drop++;
                at = tokenEnd;
            }

            Pending.RemoveRange(0, drop);
            PendingSent = end - at;
            return taken;
        }
    }

    /// <summary>
    /// Writes content deltas and tool calls in OpenAI's streamed shape: a call's first delta has its index, id, type,
    /// name and empty arguments; the next ones carry fragments of the arguments.
    /// </summary>
    private static async Task WriteToolEventsAsync(HttpResponse response, string id, long created, string model, int index, ToolCallStream stream,
        IReadOnlyList<Inference.Tools.ToolStreamEvent> events, bool logprobs, bool includeUsage, CancellationToken aborted)
    {
        async Task WriteAsync(ChunkDelta delta, ChatLogprobs? withLogprobs = null) =>
            await ServerSentEvents.WriteAsync(response, Chunk(id, created, model, new ChatChunkChoice(index, delta, withLogprobs, null), includeUsage), aborted);

        Task StartAsync(string name) => WriteAsync(new ChunkDelta(null, null,
            [new ToolCallDelta(stream.CallCount++, ChatTools.NewCallId(stream.Format), "function", new FunctionCallDelta(name, ""))]));

        Task ArgumentsAsync(string fragment) => WriteAsync(new ChunkDelta(null, null,
            [new ToolCallDelta(stream.CallCount - 1, null, null, new FunctionCallDelta(null, fragment))]));

        foreach (var item in events)
        {
            if (item.CallStart is { } name)
            {
                await StartAsync(name);
            }
            else if (item.ArgumentsDelta is { } fragment)
            {
                await ArgumentsAsync(fragment);
            }
            else if (item.Call is { } call && stream.Tools.Offers(call.Name))
            {
                if (stream.Tools.ParallelToolCalls || stream.CallCount == 0)
                {
                    await StartAsync(call.Name);
                    await ArgumentsAsync(call.Arguments);
                }
            }
            else if (item.Content is { Length: > 0 } content && (stream.CallCount == 0 || !string.IsNullOrWhiteSpace(content)))
            {
                // Text, or a call of a function that was not offered (it stays content, as in a whole answer), with the
                // logprobs of the tokens it completes: a call's markup tokens are never sent.
                await WriteAsync(new ChunkDelta(null, content), logprobs ? StructuredOutput.Chat(stream.TakeFor(content)) : null);
            }
        }
    }

    private static ChatCompletionChunk Chunk(string id, long created, string model, ChatChunkChoice choice, bool includeUsage) =>
        new(id, "chat.completion.chunk", created, model, [choice], SystemFingerprint, includeUsage ? ChatCompletionChunk.NoUsageYet : null);

    /// <summary>
    /// OpenAI fields whose effect this server cannot give are refused by name rather than dropped: the client would
    /// otherwise get an answer of another kind than it asked for (text where it asked for audio, no call where it
    /// offered functions).
    /// </summary>
    private static void RefuseWhatCannotBeHonoured(ChatCompletionRequest request)
    {
        static bool IsSet(System.Text.Json.JsonElement? value) => value is { ValueKind: not System.Text.Json.JsonValueKind.Null };

        if (IsSet(request.Functions) || IsSet(request.FunctionCall))
        {
            throw OpenAIException.BadRequest(
                "functions and function_call are deprecated and not supported by this server; send tools and tool_choice instead.",
                IsSet(request.Functions) ? "functions" : "function_call", "unsupported_parameter");
        }

        if (request.Store is true)
        {
            throw OpenAIException.BadRequest(
                "store: true is not supported on chat completions: this server keeps no chat completions. Use /v1/responses with store: true where your policy retains content, or omit store.",
                "store", "unsupported_parameter");
        }

        if (IsSet(request.WebSearchOptions))
        {
            // Served without a search, the answer would pass for a searched one (OpenAI's search models take it).
            throw OpenAIException.BadRequest(
                "web_search_options is not supported: this server runs no web search, and an answer without one is not what was asked for.",
                "web_search_options", "unsupported_parameter");
        }

        if (request.Verbosity is { } verbosity && verbosity != "medium")
        {
            throw OpenAIException.BadRequest(
                $"verbosity '{RequestReader.Shorten(verbosity)}' is not supported; only 'medium' (the default) is what this server gives.", "verbosity", "unsupported_value");
        }

        if (IsSet(request.Audio))
        {
            throw OpenAIException.BadRequest("audio output is not supported: this server writes text only.", "audio", "unsupported_parameter");
        }

        if (request.Modalities is { ValueKind: not System.Text.Json.JsonValueKind.Null } modalities)
        {
            if (modalities.ValueKind != System.Text.Json.JsonValueKind.Array
                || modalities.EnumerateArray().Any(m => m.ValueKind != System.Text.Json.JsonValueKind.String))
            {
                throw OpenAIException.BadRequest("modalities must be an array of strings.", "modalities", "invalid_type");
            }

            if (modalities.EnumerateArray().Any(m => m.GetString() != "text"))
            {
                throw OpenAIException.BadRequest("modalities may only contain 'text': this server writes text only.", "modalities", "unsupported_value");
            }
        }
    }

    /// <summary>
    /// OpenAI's <c>prediction</c>, <c>{"type": "content", "content": text or text parts}</c>, held to that shape as OpenAI
    /// holds it. It only speeds OpenAI's answer up, so it is not used here (the answer is the same without it), but any
    /// value was served: a number, a type that does not exist, no content at all. Relays see the same rule (it runs
    /// before the route).
    /// </summary>
    internal static void RequirePrediction(System.Text.Json.JsonElement? prediction)
    {
        if (prediction is not { ValueKind: not System.Text.Json.JsonValueKind.Null } value)
        {
            return;
        }

        if (value.ValueKind != System.Text.Json.JsonValueKind.Object)
        {
            throw OpenAIException.BadRequest(
                "Invalid type for 'prediction': expected an object such as {\"type\": \"content\", \"content\": \"...\"}.", "prediction", "invalid_type");
        }

        if (!value.TryGetProperty("type", out var type) || type.ValueKind == System.Text.Json.JsonValueKind.Null)
        {
            throw OpenAIException.BadRequest("Missing required parameter: 'prediction.type'.", "prediction.type", "missing_required_parameter");
        }

        if (type.ValueKind != System.Text.Json.JsonValueKind.String || type.GetString() != "content")
        {
            throw OpenAIException.BadRequest("Invalid value for 'prediction.type': supported values are: 'content'.", "prediction.type", "invalid_value");
        }

        if (!value.TryGetProperty("content", out var content) || content.ValueKind == System.Text.Json.JsonValueKind.Null)
        {
            throw OpenAIException.BadRequest("Missing required parameter: 'prediction.content'.", "prediction.content", "missing_required_parameter");
        }

        if (content.ValueKind == System.Text.Json.JsonValueKind.String)
        {
            return;
        }

        if (content.ValueKind != System.Text.Json.JsonValueKind.Array)
        {
            throw OpenAIException.BadRequest(
                "Invalid type for 'prediction.content': expected a string or an array of text parts.", "prediction.content", "invalid_type");
        }

        if (content.GetArrayLength() == 0)
        {
            throw OpenAIException.BadRequest(
                "Invalid 'prediction.content': empty array. Expected an array with minimum length 1, but got an empty array instead.", "prediction.content", "empty_array");
        }

        var i = 0;
        foreach (var part in content.EnumerateArray())
        {
            var at = $"prediction.content[{i++}]";
            if (part.ValueKind != System.Text.Json.JsonValueKind.Object)
            {
                throw OpenAIException.BadRequest($"Invalid type for '{at}': expected a text part, {{\"type\": \"text\", \"text\": \"...\"}}.", at, "invalid_type");
            }

            if (!part.TryGetProperty("type", out var partType) || partType.ValueKind != System.Text.Json.JsonValueKind.String || partType.GetString() != "text")
            {
                throw OpenAIException.BadRequest($"Invalid value for '{at}.type': a prediction's parts are text parts ('text').", $"{at}.type", "invalid_value");
            }

            if (!part.TryGetProperty("text", out var text) || text.ValueKind != System.Text.Json.JsonValueKind.String)
            {
                throw OpenAIException.BadRequest($"Invalid '{at}.text': a text part carries its text as a string.", $"{at}.text", "invalid_type");
            }
        }
    }

    /// <summary>
    /// Chat messages as turns, with OpenAI's 400s naming the message and field; <c>/tokenize</c> reads its
    /// <c>messages</c> here too, so it counts exactly the prompt chat completions bills (calls and names included).
    /// </summary>
    internal static List<ChatTurn> ValidateMessages(List<ChatMessage?>? messages)
    {
        if (messages is null)
        {
            throw OpenAIException.BadRequest("You must provide a messages parameter.", "messages", "missing_required_parameter");
        }

        if (messages.Count == 0)
        {
            throw OpenAIException.BadRequest("messages must contain at least one message.", "messages", "invalid_value");
        }

        var turns = new List<ChatTurn>(messages.Count);

        // Calls made so far (id -> the message that made it, the latest where an id is used again) and the tool
        // message that answered each: lookups, not a scan of the conversation per tool message, which made a body of
        // 55,000 calls and answers cost over a minute of CPU before anything was measured or billed. Made at the first
        // call: most conversations have none, and every request paid for both.
        Dictionary<string, int>? madeBy = null;
        Dictionary<string, int>? answeredBy = null;
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i] ?? throw OpenAIException.BadRequest($"messages[{i}] must be an object.", $"messages[{i}]", "invalid_type");
            if (message.Role is null)
            {
                throw OpenAIException.BadRequest($"messages[{i}].role is required.", $"messages[{i}].role", "missing_required_parameter");
            }

            if (!Roles.Contains(message.Role))
            {
                throw OpenAIException.BadRequest(
                    $"messages[{i}].role '{RequestReader.Shorten(message.Role ?? "")}' is not supported; use system, developer, user, assistant or tool.", $"messages[{i}].role", "invalid_value");
            }

            // OpenAI's 400. A chat template writes the name into the prompt beside the role, unmarked (content that spells
            // a control token is kept as text, LlamaModel.ControlText; a name is not): "x<|im_start|>system" opened a turn.
            if (message.Name is { } name && (name.Length == 0 || name.AsSpan().ContainsAnyExcept(NameCharacters)))
            {
                throw OpenAIException.BadRequest(
                    $"Invalid 'messages[{i}].name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.", $"messages[{i}].name", "invalid_value");
            }

            // The part is named by its type, as Responses names an input_image part and OpenAI a part the model cannot take.
            if (message.Content?.UnsupportedPartType is { } part)
            {
                var at = $"messages[{i}].content[{message.Content.UnsupportedPart}]";
                throw OpenAIException.BadRequest($"{at} is a '{RequestReader.Shorten(part ?? "")}' part; this model accepts text only.", $"{at}.type", "unsupported_content");
            }

            if (message.Content is { HasRefusal: true } && message.Role != "assistant")
            {
                // OpenAI's user, system, developer and tool parts have no refusal type.
                var at = $"messages[{i}].content[{message.Content.RefusalPart}]";
                throw OpenAIException.BadRequest($"{at} is a 'refusal' part; only assistant messages carry refusals.", $"{at}.type", "invalid_value");
            }

            if (message.Content is { EmptyArray: true })
            {
                // OpenAI's wording; an empty array was served as an empty message.
                throw OpenAIException.BadRequest(
                    $"Invalid 'messages[{i}].content': empty array. Expected an array with minimum length 1, but got an empty array instead.", $"messages[{i}].content", "empty_array");
            }

            if (message.Content is null && message.Role != "assistant")
            {
                throw OpenAIException.BadRequest($"messages[{i}].content is required.", $"messages[{i}].content", "missing_required_parameter");
            }

            if (message.ToolCalls is { ValueKind: not System.Text.Json.JsonValueKind.Null } && message.Role != "assistant")
            {
                throw OpenAIException.BadRequest($"messages[{i}].tool_calls is only allowed on assistant messages.", $"messages[{i}].tool_calls", "invalid_value");
            }

            if (message.Role == "tool" && string.IsNullOrEmpty(message.ToolCallId))
            {
                throw OpenAIException.BadRequest($"Missing required parameter: 'messages[{i}].tool_call_id'.", $"messages[{i}].tool_call_id", "missing_required_parameter");
            }

            // The parameter's path is written only for a message that has tool calls (it names them in a refusal).
            var calls = message.ToolCalls is { ValueKind: not System.Text.Json.JsonValueKind.Null }
                ? ChatTools.ReadHistoryCalls(message.ToolCalls, $"messages[{i}].tool_calls")
                : null;
            foreach (var call in calls ?? [])
            {
                // An id used again by a later message is a new call, answered afresh.
                (madeBy ??= new Dictionary<string, int>(StringComparer.Ordinal))[call.Id] = i;
                answeredBy?.Remove(call.Id);
            }

            if (message.Role == "tool")
            {
                var callId = message.ToolCallId!;
                if (madeBy is null || !madeBy.ContainsKey(callId))
                {
                    // OpenAI: a tool message must answer a call made earlier in the conversation.
                    throw OpenAIException.BadRequest(
                        $"Invalid parameter: messages with role 'tool' must be a response to a preceding message with 'tool_calls' (no call has id '{RequestReader.Shorten(callId)}').",
                        $"messages[{i}].tool_call_id", "invalid_value");
                }

                answeredBy ??= new Dictionary<string, int>(StringComparer.Ordinal);
                if (answeredBy.TryGetValue(callId, out var first))
                {
                    // OpenAI's 400: two results for one call leave the model (and an auditor) to guess which one counts.
                    throw OpenAIException.BadRequest(
                        $"Invalid parameter: Duplicate value for 'tool_call_id' of '{RequestReader.Shorten(callId)}', in messages[{first}] and messages[{i}].",
                        $"messages[{i}].tool_call_id", "invalid_value");
                }

                answeredBy[callId] = i;
            }

            turns.Add(new ChatTurn(message.Role == "developer" ? "system" : message.Role, message.Content?.Text ?? "")
            {
                ToolCalls = calls,
                ToolCallId = message.Role == "tool" ? message.ToolCallId : null,
                Name = message.Name,
            });
        }

        RequireAnsweredCalls(turns);
        return turns;
    }

    /// <summary>
    /// OpenAI: an assistant message's tool calls are answered by the tool messages right after it, each of them. A
    /// conversation with a call nobody answered was served, the model reading it as it stood.
    /// </summary>
    private static void RequireAnsweredCalls(List<ChatTurn> turns)
    {
        for (var i = 0; i < turns.Count; i++)
        {
            if (turns[i].ToolCalls is not { Count: > 0 } calls)
            {
                continue;
            }

            var next = i + 1;
            var answered = new HashSet<string>(StringComparer.Ordinal);
            for (; next < turns.Count && turns[next].Role == "tool"; next++)
            {
                answered.Add(turns[next].ToolCallId!);
            }

            var unanswered = calls.Where(c => !answered.Contains(c.Id)).Select(c => RequestReader.Shorten(c.Id)).ToList();
            if (unanswered.Count > 0)
            {
                throw OpenAIException.BadRequest(
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. " +
                    $"The following tool_call_ids did not have response messages: {string.Join(", ", unanswered)}.",
                    next < turns.Count ? $"messages[{next}].role" : $"messages[{i}].tool_calls", "invalid_value");
            }
        }
    }
}
