using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Pipeline.Executors;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Tools;
using Sovereign.Residency.Policies;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// <c>POST /v1/responses</c>, streaming (typed events) and not. The request is translated into the chat workload
/// (<see cref="ResponsesTranslation"/>) and runs on the same governed pipeline as chat: residency, metering, audit and
/// accounting on every exit. Nothing is stored unless the client sends <c>store: true</c> and the tenant's policy
/// retains content (<see cref="ResponsesStorage"/>; OpenAI's default <c>store</c> is true, an absent one means false
/// here, so content is never kept by default). Function tools run as chat's
/// do (<see cref="ChatTools"/>): each call the model makes is a <c>function_call</c> output item.
/// </summary>
internal static partial class ResponsesEndpoint
{
    public static async Task HandleAsync(HttpContext context, RequestPipeline pipeline, ResponsesStorage storage, IOptions<SovereignOptions> options, TimeProvider time)
    {
        var limits = options.Value.Limits;
        // One tenant-grain call, in admission, as chat's: a key whose tenant this gateway has seen is authorized from its
        // cache, and the stored-content checks below are made on that tenant, confirmed before any refusal of theirs and
        // made again if admission finds the tenant's policy changed since.
        var caller = await pipeline.AuthenticateForAdmissionAsync(context);
        var request = await RequestReader.ReadAsync<ResponsesRequest>(context, RequestFields.For<ResponsesRequest>(caller, options.Value));
        ResponsesTranslation.RefuseUnsupported(request);
        ResponsesTranslation.CheckMetadata(request);
        IReadOnlyList<ChatTurn> history;
        try
        {
            history = await StoredContentAsync(storage, request, caller, context.RequestAborted);
        }
        catch (OpenAIException) when (caller.Provisional is { Confirmed: false })
        {
            // Refused on this gateway's cached tenant: the tenant's grain answers first (a key revoked since is its 401),
            // and a policy changed since decides again, on the tenant as it is now.
            var current = await pipeline.ConfirmBeforeRefusalAsync(context, caller);
            if (current is null)
            {
                throw;
            }

            caller = current;
            history = await StoredContentAsync(storage, request, caller, context.RequestAborted);
        }
        var turns = ResponsesTranslation.ToTurns(request, history);
        var grammar = ResponsesTranslation.GrammarFor(request.Text?.Format);
        var tools = ResponsesTranslation.ReadTools(request, out var chatTools, out var chatChoice);
        if (grammar is not null && tools?.Mode is ToolChoiceMode.Required or ToolChoiceMode.Named)
        {
            throw OpenAIException.BadRequest(
                "text.format cannot be combined with a tool_choice that forces a function call: the answer is the call.", "tool_choice", "invalid_value");
        }

        // The input counts, the instructions (the first turn, when given) do not: OpenAI's rule.
        StructuredOutput.RequireJsonMention(
            request.Text?.Format?.Type, turns.Skip(string.IsNullOrEmpty(request.Instructions) ? 0 : 1).Select(t => t.Content), "text.format");

        if (limits.MaxOutputTokens > 0 && request.MaxOutputTokens > limits.MaxOutputTokens)
        {
            throw OpenAIException.BadRequest(
                $"max_output_tokens is {request.MaxOutputTokens}, above this server's limit of {limits.MaxOutputTokens}.", "max_output_tokens", "invalid_value");
        }

        var work = new GenerationWorkload
        {
            Model = request.Model,
            LanguageSample = PromptTexts.Of(turns, tools),
            Endpoint = "responses",
            ChatRelayBody = ResponsesTranslation.ToChatBody(request, turns, chatTools, chatChoice),
            Turns = turns,
            Sampling = new SamplingOptions { Temperature = request.Temperature ?? 1f, TopP = request.TopP ?? 1f },
            RequestedMaxTokens = request.MaxOutputTokens,
            MaxTokens = request.MaxOutputTokens ?? (limits.MaxOutputTokens > 0 ? limits.MaxOutputTokens : null),
            MaxTokensParameter = "max_output_tokens",
            PromptParameter = "input",
            Stop = [],
            N = 1,
            Stream = request.Stream == true,
            Grammar = grammar,
            Tools = tools,

            // Decided again on a changed policy: it must still keep content here, and the stored response this one
            // continues must still be readable under it (a stored response never changes, so the history read holds).
            CallerCheck = current => StoredContentAsync(storage, request, current, context.RequestAborted),
        };
        // The id is this gateway's wherever the request runs (a relay's chat answer is translated here): chosen before
        // the decision, whose entry names it (response_id), as the outcome's does.
        var responseId = GenerationRun.NewId("resp_");
        context.Items[InferenceRouter.AnswerIdKey] = new AnswerId(responseId, EvenWhenRelayed: true);
        await using var governed = await StartAsync(pipeline, context, caller, work);
        caller = governed.Caller;
        governed.Route!.ContinuedFrom = request.PreviousResponseId;
        var shape = new ResponseShape(
            responseId, GenerationRun.NewId("msg_"), time.GetUtcNow().ToUnixTimeSeconds(), governed.Route!.Model, request);

        governed.Route.ResponseId = shape.Id;
        if (request.Store == true)
        {
            // The conversation this response ends, without this request's instructions (a continuation brings its own).
            var conversation = string.IsNullOrEmpty(request.Instructions) ? turns : turns.Skip(1);
            shape.Keep = final => storage.SaveAsync(caller, governed.Route, final, [.. conversation, OutputTurn(final.Output)], context.RequestAborted);
        }

        if (governed.Execution is UpstreamRelay relay)
        {
            // An external engine or another node: asked in chat's format, answered here in Responses'.
            await (work.Stream ? RelayStreamAsync(governed, relay, shape, tools) : RelayJsonAsync(governed, relay, shape));
            return;
        }

        var local = (LocalGeneration)governed.Execution!;
        var toolFormat = governed.Route.Local!.Batcher!.Model.Info.ToolCallFormat;
        if (work.Stream)
        {
            await StreamAsync(governed, local, shape, tools, toolFormat);
            return;
        }

        var (text, result, _, _) = (await local.Run.CollectAsync())[0];
        var status = StatusOf(result);
        var response = shape.Final(OutputItems(shape, text, result, tools, toolFormat, status), status, UsageOf(local, result));
        await shape.CloseAsync(governed, response);
        await TypedResults.Json(response, OpenAIJson.Options).ExecuteAsync(context);
    }

    /// <summary>
    /// What the request's stored content needs of the caller's policy: content kept here for <c>store</c> and
    /// <c>previous_response_id</c> (400 otherwise), and the conversation a continuation extends, read under that policy.
    /// </summary>
    private static async Task<IReadOnlyList<ChatTurn>> StoredContentAsync(ResponsesStorage storage, ResponsesRequest request, Caller caller, CancellationToken cancellationToken)
    {
        storage.RequireRetention(request, caller);
        return request.PreviousResponseId is { } previous ? await storage.ConversationAsync(caller, previous, cancellationToken) : [];
    }

    /// <summary>
    /// <c>GET /v1/responses/{id}</c>: a stored response, to its own tenant only. OpenAI's query parameters are known:
    /// <c>stream=false</c> and <c>include_obfuscation</c> (which only streaming uses) are accepted; replaying a stored
    /// response as a stream (<c>stream=true</c>, <c>starting_after</c>) and <c>include</c> are refused by name.
    /// </summary>
    public static async Task<IResult> GetAsync(HttpContext context, string id, RequestPipeline pipeline, ResponsesStorage storage)
    {
        var caller = await pipeline.AuthenticateAsync(context);
        var query = context.Request.Query;
        if (query["stream"].ToString() is { Length: > 0 } stream && stream != "false")
        {
            throw OpenAIException.BadRequest("stream is not supported here: a stored response is answered whole (stream=false).", "stream", "unsupported_parameter");
        }

        if (query["include_obfuscation"].ToString() is { Length: > 0 } obfuscation && obfuscation is not ("true" or "false"))
        {
            throw OpenAIException.BadRequest($"include_obfuscation must be true or false; got '{RequestReader.Shorten(obfuscation)}'.", "include_obfuscation", "invalid_value");
        }

        if (query["starting_after"].Count > 0)
        {
            throw OpenAIException.BadRequest("starting_after is not supported: a stored response is not replayed as a stream.", "starting_after", "unsupported_parameter");
        }

        if (query["include"].Count > 0 || query["include[]"].Count > 0)
        {
            throw OpenAIException.BadRequest("include is not supported: this server has no extra output items to include.", "include", "unsupported_parameter");
        }

        return await storage.GetAsync(context, caller, id);
    }

    /// <summary><c>GET /v1/responses/{id}/input_items</c>: what a stored response was generated from, to its own tenant only.</summary>
    public static async Task<IResult> InputItemsAsync(HttpContext context, string id, RequestPipeline pipeline, ResponsesStorage storage) =>
        await storage.InputItemsAsync(context, await pipeline.AuthenticateAsync(context), id);

    /// <summary><c>DELETE /v1/responses/{id}</c>: deletes a stored response of the caller's tenant.</summary>
    public static async Task<IResult> DeleteAsync(HttpContext context, string id, RequestPipeline pipeline, ResponsesStorage storage) =>
        await storage.DeleteAsync(context, await pipeline.AuthenticateAsync(context), id);

    /// <summary>
    /// <c>POST /v1/responses/{id}/cancel</c>: OpenAI cancels background responses only, and this server runs none (every
    /// response is answered in its request), so a stored response of the caller's tenant is a 400 that says so; an
    /// unknown id, or another tenant's, is the same 404 as on GET.
    /// </summary>
    public static async Task<IResult> CancelAsync(HttpContext context, string id, RequestPipeline pipeline, ResponsesStorage storage) =>
        await storage.CancelAsync(context, await pipeline.AuthenticateAsync(context), id);

    /// <summary>The output items as the assistant turn a continuation (<c>previous_response_id</c>) sees.</summary>
    private static ChatTurn OutputTurn(IReadOnlyList<object> output)
    {
        var text = string.Concat(output.OfType<ResponseMessageItem>().SelectMany(m => m.Content).Select(p => p.Text));
        var calls = output.OfType<FunctionCallItem>().Select(c => new Sovereign.Inference.Templates.ChatToolCall(c.CallId, c.Name, c.Arguments)).ToList();
        return new ChatTurn("assistant", text) { ToolCalls = calls.Count > 0 ? calls : null };
    }

    private static ResponseUsage UsageOf(LocalGeneration local, GenerationResult result) => UsageOf(local.PromptTokens, local.CachedTokens, result.CompletionTokens);

    private static ResponseUsage UsageOf(int inputTokens, int cachedTokens, int outputTokens) =>
        new(inputTokens, new InputTokensDetails(cachedTokens), outputTokens, new OutputTokensDetails(0), inputTokens + outputTokens);

    /// <summary>The executor compiles a forced call's grammar and names an unenforceable schema as chat does; renamed to Responses' flat tools.</summary>
    private static async Task<GovernedRequest> StartAsync(RequestPipeline pipeline, HttpContext context, Caller caller, GenerationWorkload work)
    {
        try
        {
            return await pipeline.StartAsync(context, caller, work);
        }
        catch (OpenAIException ex) when (work.Tools is not null && ex.Param?.StartsWith("tools[", StringComparison.Ordinal) == true)
        {
            throw OpenAIException.BadRequest(
                ex.Message.Replace(".function.", ".", StringComparison.Ordinal), ex.Param.Replace(".function.", ".", StringComparison.Ordinal), ex.Code);
        }
    }

    /// <summary>A generation cut by its token limit (or the context's end) is incomplete, as OpenAI reports it.</summary>
    private static string StatusOf(GenerationResult result) => result.FinishReason == FinishReason.Length ? "incomplete" : "completed";

    /// <summary>The text as a message item; with tools, each call in it becomes a function_call item after the text before it (if any).</summary>
    private static List<object> OutputItems(ResponseShape shape, string text, GenerationResult result, ChatTools? tools, ToolCallFormat format, string status)
    {
        if (tools is { ParsesCalls: true } && result.FinishReason == FinishReason.Stop && tools.Read(format, text) is { Calls.Count: > 0 } read)
        {
            var items = new List<object>();
            if (!string.IsNullOrWhiteSpace(read.Content))
            {
                items.Add(new ResponseMessageItem(shape.MessageId, status, [new OutputText(read.Content)]));
            }

            items.AddRange(read.Calls.Select(c => new FunctionCallItem(GenerationRun.NewId("fc_"), ChatTools.NewCallId(format), c.Name, c.Arguments, status)));
            return items;
        }

        if (tools is { ParsesCalls: true } && result.FinishReason == FinishReason.Length && tools.ReadTruncated(format, text) is { } cut)
        {
            // Cut inside a call: the call as far as it got (incomplete, like the response), never the template's markup.
            var items = new List<object>();
            if (!string.IsNullOrWhiteSpace(cut.Content))
            {
                items.Add(new ResponseMessageItem(shape.MessageId, status, [new OutputText(cut.Content)]));
            }

            items.AddRange(cut.Calls.Select(c => new FunctionCallItem(GenerationRun.NewId("fc_"), ChatTools.NewCallId(format), c.Name, c.Arguments, status)));
            return items;
        }

        return [new ResponseMessageItem(shape.MessageId, status, [new OutputText(text)])];
    }

    /// <summary>
    /// Starts a stream of OpenAI's typed events (<c>response.created</c>, <c>response.in_progress</c>) and returns
    /// how to send the next one, numbered in order.
    /// </summary>
    private static async Task<Func<ResponseEvent, Task>> StartEventsAsync(GovernedRequest governed, ResponseShape shape)
    {
        var response = governed.Http.Response;
        var aborted = governed.Aborted;
        var sequence = ResponsesSequence.Start(governed.Http);
        async Task Send(ResponseEvent e)
        {
            e.SequenceNumber = sequence.Value++;
            await ServerSentEvents.WriteEventAsync(response, e.Type, e, aborted);
        }

        ServerSentEvents.Start(response);
        var started = shape.InProgress();
        await Send(new ResponseLifecycleEvent("response.created", started));
        await Send(new ResponseLifecycleEvent("response.in_progress", started));
        return Send;
    }

    /// <summary>Streams OpenAI's typed events; the books close before <c>response.completed</c> (which carries the usage).</summary>
    private static async Task StreamAsync(GovernedRequest governed, LocalGeneration local, ResponseShape shape, ChatTools? tools, ToolCallFormat format)
    {
        var aborted = governed.Aborted;
        var send = await StartEventsAsync(governed, shape);
        var output = new OutputItemStream(send, shape, format);
        var parser = tools is { ParsesCalls: true }
            ? new ToolCallStreamParser(format, name => tools.Offers(name) && (tools.ParallelToolCalls || output.CallCount == 0))
            : null;
        if (parser is null)
        {
            await output.OpenMessageAsync();
        }

        GenerationResult? result = null;
        try
        {
            await foreach (var (_, update) in local.Run.StreamAsync(aborted))
            {
                if (parser is null)
                {
                    if (update.Text.Length > 0)
                    {
                        await output.TextAsync(update.Text);
                    }
                }
                else
                {
                    var events = parser.Push(update.Text);
                    if (update.Result is not null)
                    {
                        events = [.. events, .. parser.Finish(truncated: update.Result.FinishReason == FinishReason.Length)];
                    }

                    foreach (var item in events)
                    {
                        await output.ToolEventAsync(item, tools!);
                    }
                }

                result = update.Result ?? result;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Headers are sent: the error goes in the stream; the books close (as failed) when the request is disposed.
            var error = OpenAIErrorResults.MapStreamed(governed.Http, ex);
            await send(new ResponseErrorEvent(error.Code, error.Message, error.Param));
            return;
        }

        var status = StatusOf(result!);
        var items = await output.FinishAsync(status);
        var final = shape.Final(items, status, UsageOf(local, result!));
        await shape.CloseAsync(governed, final);
        await send(new ResponseLifecycleEvent(final.Status == "completed" ? "response.completed" : "response.incomplete", final));
    }

    /// <summary>
    /// The output items of a streamed response. Generated locally, one is open at a time: a message takes text deltas; a
    /// function_call takes argument deltas and is closed by whatever comes next (another call, text, the end). Relayed
    /// calls are keyed by the engine's call index and stay open to the end, since an engine may interleave two calls'
    /// fragments: a new item opened whenever the index changed, so such an answer had more items than calls.
    /// </summary>
    private sealed class OutputItemStream(Func<ResponseEvent, Task> send, ResponseShape shape, ToolCallFormat format)
    {
        /// <summary>Items by output_index: a place is taken when an item opens and filled when it closes.</summary>
        private readonly List<object?> _items = [];
        private readonly System.Text.StringBuilder _text = new();

        /// <summary>Open calls, in the order they opened.</summary>
        private readonly List<OpenCall> _calls = [];
        private string? _messageId;
        private int _messageIndex;
        private bool _messageOpened;
        private string _heldWhitespace = "";

        private sealed class OpenCall(FunctionCallItem item, int outputIndex, int? key)
        {
            public FunctionCallItem Item { get; } = item;
            public int OutputIndex { get; } = outputIndex;

            /// <summary>The engine's call index (a relayed call); null for a call generated here.</summary>
            public int? Key { get; } = key;
            public System.Text.StringBuilder Arguments { get; } = new();
        }

        /// <summary>Calls started so far.</summary>
        public int CallCount { get; private set; }

        public async Task OpenMessageAsync()
        {
            // The first message keeps the id the response was created with.
            _messageId = _messageOpened ? GenerationRun.NewId("msg_") : shape.MessageId;
            _messageOpened = true;
            _messageIndex = _items.Count;
            _items.Add(null);
            await send(new OutputItemEvent("response.output_item.added", _messageIndex, new ResponseMessageItem(_messageId, "in_progress", [])));
            await send(new ContentPartEvent("response.content_part.added", _messageId, _messageIndex, 0, new OutputText("")));
        }

        public async Task TextAsync(string text)
        {
            await CloseCallsAsync("completed", keyed: false);
            if (_messageId is null)
            {
                if (string.IsNullOrWhiteSpace(text))
                {
                    // Whitespace around calls is not worth a message item; it is kept in case text follows.
                    _heldWhitespace += text;
                    return;
                }

                await OpenMessageAsync();
                text = _heldWhitespace + text;
                _heldWhitespace = "";
            }

            _text.Append(text);
            await send(new OutputTextDeltaEvent(_messageId!, _messageIndex, 0, text));
        }

        /// <summary>One event of the tool-call parser, kept or dropped as chat's stream does.</summary>
        public async Task ToolEventAsync(Sovereign.Inference.Tools.ToolStreamEvent item, ChatTools tools)
        {
            if (item.CallStart is { } name)
            {
                await StartCallAsync(name);
            }
            else if (item.ArgumentsDelta is { } fragment)
            {
                await ArgumentsAsync(fragment);
            }
            else if (item.Call is { } call && tools.Offers(call.Name))
            {
                if (tools.ParallelToolCalls || CallCount == 0)
                {
                    await StartCallAsync(call.Name);
                    await ArgumentsAsync(call.Arguments);
                    await CloseCallsAsync("completed", keyed: false);
                }
            }
            else if (item.Content is { Length: > 0 } content && (CallCount == 0 || !string.IsNullOrWhiteSpace(content)))
            {
                // Text, or a call of a function that was not offered (it stays text, as in a whole answer).
                await TextAsync(content);
            }
        }

        /// <summary>Closes what is open; a response with no item at all gets its (empty or blank) message.</summary>
        public async Task<IReadOnlyList<object>> FinishAsync(string status)
        {
            await CloseCallsAsync(status, keyed: true);
            if (_items.Count == 0)
            {
                await OpenMessageAsync();
                if (_heldWhitespace.Length > 0)
                {
                    _text.Append(_heldWhitespace);
                    await send(new OutputTextDeltaEvent(_messageId!, _messageIndex, 0, _heldWhitespace));
                }
            }

            await CloseMessageAsync(status);
            return [.. _items.Select(i => i!)];
        }

        /// <summary>A fragment of the arguments of the call generated here that is open.</summary>
        public async Task ArgumentsAsync(string fragment) => await ArgumentsAsync(_calls[^1], fragment);

        /// <summary>Opens a function_call item (closing what is open); <paramref name="callId"/> is the engine's when it named one.</summary>
        public async Task StartCallAsync(string name, string? callId = null)
        {
            await CloseCallsAsync("completed", keyed: false);
            await OpenCallAsync(name, callId, key: null);
        }

        /// <summary>
        /// A relayed call's delta: the first of its <paramref name="index"/> opens its item (with the name and the
        /// engine's call id), every one adds its fragment to that item, whatever came between.
        /// </summary>
        public async Task RelayedCallAsync(int index, Func<string?> name, Func<string?> callId, string fragment)
        {
            var call = _calls.Find(c => c.Key == index) ?? await OpenCallAsync(name() ?? "", callId(), index);
            if (fragment.Length > 0)
            {
                await ArgumentsAsync(call, fragment);
            }
        }

        private async Task<OpenCall> OpenCallAsync(string name, string? callId, int? key)
        {
            await CloseMessageAsync("completed");
            _heldWhitespace = "";
            var call = new OpenCall(new FunctionCallItem(GenerationRun.NewId("fc_"), callId ?? ChatTools.NewCallId(format), name, "", "in_progress"), _items.Count, key);
            _items.Add(null);
            _calls.Add(call);
            CallCount++;
            await send(new OutputItemEvent("response.output_item.added", call.OutputIndex, call.Item));
            return call;
        }

        private async Task ArgumentsAsync(OpenCall call, string fragment)
        {
            call.Arguments.Append(fragment);
            await send(new FunctionCallArgumentsDeltaEvent(call.Item.Id, call.OutputIndex, fragment));
        }

        /// <summary>Closes the open calls generated here, and with <paramref name="keyed"/> the relayed ones too.</summary>
        private async Task CloseCallsAsync(string status, bool keyed)
        {
            foreach (var call in _calls.Where(c => keyed || c.Key is null).ToList())
            {
                var done = call.Item with { Arguments = call.Arguments.ToString(), Status = status };
                await send(new FunctionCallArgumentsDoneEvent(done.Id, call.OutputIndex, done.Arguments));
                await send(new OutputItemEvent("response.output_item.done", call.OutputIndex, done));
                _items[call.OutputIndex] = done;
                _calls.Remove(call);
            }
        }

        private async Task CloseMessageAsync(string status)
        {
            if (_messageId is null)
            {
                return;
            }

            var part = new OutputText(_text.ToString());
            var item = new ResponseMessageItem(_messageId, status, [part]);
            await send(new OutputTextDoneEvent(_messageId, _messageIndex, 0, part.Text));
            await send(new ContentPartEvent("response.content_part.done", _messageId, _messageIndex, 0, part));
            await send(new OutputItemEvent("response.output_item.done", _messageIndex, item));
            _items[_messageIndex] = item;
            _messageId = null;
            _text.Clear();
        }
    }

    /// <summary>What every response object of one request shares, echoing the request's settings as OpenAI does.</summary>
    private sealed record ResponseShape(string Id, string MessageId, long CreatedAt, string Model, ResponsesRequest Request)
    {
        /// <summary>Stores the final response (<c>store: true</c>); null keeps nothing.</summary>
        public Func<ResponseObject, Task>? Keep { get; set; }

        /// <summary>Stores the response if asked, then closes the books; before the client's last bytes.</summary>
        public async Task CloseAsync(GovernedRequest governed, ResponseObject final)
        {
            if (Keep is not null)
            {
                await Keep(final);
            }

            await governed.CompleteAsync();

            // A stream: its last event (response.completed or .incomplete) follows the comment naming the outcome's entry.
            await ServerSentEvents.WriteOutcomeEntryAsync(governed.Http.Response, governed.Aborted);
        }

        public ResponseObject InProgress() => Base("in_progress", [], null, null);

        public ResponseObject Final(IReadOnlyList<object> output, string status, ResponseUsage usage) =>
            Base(status, output, usage, status == "incomplete" ? new IncompleteDetails("max_output_tokens") : null);

        private ResponseObject Base(string status, IReadOnlyList<object> output, ResponseUsage? usage, IncompleteDetails? incomplete) => new()
        {
            Id = Id,
            CreatedAt = CreatedAt,
            Status = status,
            IncompleteDetails = incomplete,
            Instructions = Request.Instructions,
            MaxOutputTokens = Request.MaxOutputTokens,
            Model = Model,
            Output = output,
            ParallelToolCalls = Request.ParallelToolCalls ?? true,
            Temperature = Request.Temperature ?? 1f,
            TopP = Request.TopP ?? 1f,
            Text = new TextSettings(FormatEcho(Request.Text?.Format)),
            ToolChoice = Request.ToolChoice is { ValueKind: not JsonValueKind.Null } choice ? choice : "auto",
            Tools = Request.Tools is { ValueKind: JsonValueKind.Array } tools ? [.. tools.EnumerateArray().Select(ToolEcho)] : [],
            Usage = usage,
            User = Request.User,
            SafetyIdentifier = Request.SafetyIdentifier,
            PromptCacheKey = Request.PromptCacheKey,
            Metadata = Request.Metadata ?? [],
            Store = Request.Store == true,
            PreviousResponseId = Request.PreviousResponseId,
        };

        /// <summary>
        /// A tool as sent, except that a function tool states <c>strict</c>: OpenAI's echo always has it (its SDKs type it
        /// required), <c>true</c> where the request left it out, Responses' default. It was echoed without it.
        /// </summary>
        private static object ToolEcho(JsonElement tool)
        {
            if (tool.ValueKind != JsonValueKind.Object || tool.TryGetProperty("strict", out var strict) && strict.ValueKind != JsonValueKind.Null
                || !tool.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "function")
            {
                return tool;
            }

            var echo = JsonObject.Create(tool)!;
            echo["strict"] = true;
            return echo;
        }

        private static object FormatEcho(ResponsesTextFormat? format) => format?.Type switch
        {
            "json_schema" => new { type = "json_schema", name = format.Name, description = format.Description, schema = format.Schema, strict = format.Strict },
            "json_object" => new { type = "json_object" },
            _ => new { type = "text" },
        };
    }
}
