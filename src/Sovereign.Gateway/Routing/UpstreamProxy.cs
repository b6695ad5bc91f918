using System.Buffers;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.Routing;

/// <summary>Token counts an upstream engine reported.</summary>
internal readonly record struct UpstreamUsage(int PromptTokens, int CompletionTokens, int CachedTokens = 0);

/// <summary>
/// What a relay has delivered so far, kept outside the relay so that a client that leaves mid-stream is still billed
/// for what it received: the upstream's own usage when it reported one, else one token per content chunk relayed
/// (engines such as vLLM, llama-server and Ollama stream one token per chunk).
/// </summary>
internal sealed class RelayProgress
{
    private int _chunks;
    private long _firstDeliveredAt;

    /// <summary>Content chunks relayed to the client.</summary>
    public int DeliveredChunks => Volatile.Read(ref _chunks);

    /// <summary>When the first content chunk was relayed (a <see cref="System.Diagnostics.Stopwatch"/> timestamp); 0 before.</summary>
    public long FirstDeliveredAt => Volatile.Read(ref _firstDeliveredAt);

    /// <summary>The usage the upstream reported, once it did.</summary>
    public UpstreamUsage? Reported { get; set; }

    /// <summary>The compute seconds a cluster node reported in its stream (<see cref="Pipeline.RelayComputeReport"/>).</summary>
    public decimal? ReportedComputeSeconds { get; set; }

    /// <summary>
    /// Whether the engine was asked for the usage so far on every event (vLLM's <c>continuous_usage_stats</c>): each is
    /// the request's total so far, the latest replaces the one before, and clients are not sent it on content events.
    /// </summary>
    public bool UsageOnEveryEvent { get; init; }

    /// <summary>Whether the caller is a gateway that asked for the count on every event (<see cref="Pipeline.RelayUsageSoFar"/>): content events keep it.</summary>
    public bool PassesUsageSoFar { get; init; }

    /// <summary>
    /// Whether <see cref="Reported"/> is only a count so far: asked for usage on every event, the last one read was a
    /// content event's, not the event without choices that ends the stream with the whole usage.
    /// </summary>
    public bool UsageSoFar { get; set; }

    /// <summary>
    /// Whether the engine ended its stream with an error before any content or usage (a cluster node whose decision's
    /// entry could not be committed after its headers and role chunk left: <c>audit_unavailable</c>): it ran nothing the
    /// client received, so nothing is billed, not even the prompt a node states in its headers (<see cref="Pipeline.RelayPromptTokens"/>).
    /// </summary>
    public bool RefusedBeforeContent { get; set; }

    /// <summary>
    /// Awaited before a stream's first content, or any event after its first (<see cref="Pipeline.GovernedRequest.EvidenceDurableAsync"/>):
    /// a gateway whose relay left while its decision's entry commits passes the node's headers and role chunk on at once,
    /// and nothing more until the entry is durable. Null: nothing to wait for.
    /// </summary>
    public Func<ValueTask>? BeforeContent { get; set; }

    /// <summary>Takes <see cref="BeforeContent"/> for its one await (null: nothing to wait for).</summary>
    internal Func<ValueTask>? TakeBeforeContent()
    {
        var gate = BeforeContent;
        BeforeContent = null;
        return gate;
    }

    /// <summary>Told of each event the engine sends in a stream (a fronted engine's liveness); null when nobody asks.</summary>
    public Action? EngineAnswered { get; init; }

    /// <summary>
    /// Told once the engine's whole answer has been read, which may be before the client received it (the relay
    /// reads up to <see cref="ReadAheadBytes"/> ahead of the client): the relay gives the route's slot back then, so a
    /// client reading slowly does not keep the engine's place. Null: the slot is held until the request ends.
    /// </summary>
    public Action? EngineDone { get; init; }

    /// <summary>Bytes of a streamed answer read ahead of the client at most (<c>Sovereign:Limits:RelayReadAheadBytes</c>); 0: none.</summary>
    public long ReadAheadBytes { get; init; }

    /// <summary>What all relays may hold read ahead together; null: only <see cref="ReadAheadBytes"/> bounds this one.</summary>
    public ReadAheadBudget? ReadAheadBudget { get; init; }

    /// <summary>Gathers the completion's text as it is read from the engine, for the language tax's waiver (null: not asked).</summary>
    public Sovereign.Languages.LetterSample? Completion { get; init; }

    /// <summary>Adds the generated text of a chunk or answer (chat's content, completions' text) to <see cref="Completion"/>, choice by choice.</summary>
    internal void Gather(JsonObject chunkOrAnswer)
    {
        if (Completion is null || chunkOrAnswer["choices"] is not JsonArray choices)
        {
            return;
        }

        foreach (var choice in choices)
        {
            var index = choice?["index"] is JsonValue i && i.TryGetValue<int>(out var n) ? n : 0;
            var text = (choice?["delta"] ?? choice?["message"])?["content"] ?? choice?["text"];
            if (text is JsonValue value && value.GetValueKind() == JsonValueKind.String)
            {
                Completion.Append(index, value.GetValue<string>());
            }
        }
    }

    /// <summary>The <c>id</c> of the engine's answer (its first event's, in a stream), as the client receives it; null until read, or when it has none we would record.</summary>
    public string? ResponseId { get; private set; }

    private bool _responseIdRead;

    /// <summary>
    /// Reads the answer's top-level <c>id</c> from <paramref name="json"/> (a whole answer, or a stream's event) unless an
    /// earlier part gave it: once per relay, so a stream pays for one event's scan. The outcome's audit entry states it
    /// (<c>response_id</c>), so an auditor handed the client's body finds the entry. An id that is not a plain token
    /// (<see cref="RecordableResponseId"/>) is not recorded: the engine wrote it, and it would reach a terminal.
    /// </summary>
    internal void ReadResponseId(ReadOnlySpan<byte> json)
    {
        if (_responseIdRead)
        {
            return;
        }

        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return; // [DONE], a comment: wait for an event that is an object
            }

            _responseIdRead = true;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("id"u8))
                {
                    ResponseId = reader.Read() && reader.TokenType == JsonTokenType.String && reader.GetString() is { } id && RecordableResponseId(id) ? id : null;
                    return;
                }

                reader.Read();
                reader.Skip();
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Not JSON the relay can read (the relay's own reading reports it); no id recorded.
        }
    }

    /// <summary>An id as engines make them: 1 to 128 ASCII letters, digits, '-', '_', '.', ':'.</summary>
    internal static bool RecordableResponseId(string id) =>
        id.Length is > 0 and <= 128 && id.AsSpan().IndexOfAnyExcept(ResponseIdCharacters) < 0;

    private static readonly System.Buffers.SearchValues<char> ResponseIdCharacters =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:");

    internal void Delivered()
    {
        if (Interlocked.Increment(ref _chunks) == 1)
        {
            Volatile.Write(ref _firstDeliveredAt, System.Diagnostics.Stopwatch.GetTimestamp());
        }
    }
}

/// <summary>
/// How a relayed request ended. The last part of the answer (the JSON body, or the stream's final [DONE]) is left
/// to <see cref="FinishAsync"/>, so the caller can meter the request before the client sees it complete.
/// </summary>
internal sealed class UpstreamResult(UpstreamUsage? usage, JsonObject? body, bool streamed, byte[]? written = null)
{
    public UpstreamUsage? Usage { get; } = usage;

    public bool Succeeded => Usage is not null;

    public async Task FinishAsync(HttpContext context)
    {
        if (body is not null || written is not null)
        {
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentType = OpenAIJson.ContentType;
            await context.Response.Body.WriteAsync(written ?? JsonSerializer.SerializeToUtf8Bytes(body, OpenAIJson.Options), context.RequestAborted);
        }
        else if (streamed)
        {
            await ServerSentEvents.WriteDoneAsync(context.Response, context.RequestAborted);
        }
    }
}

/// <summary>
/// Forwards an OpenAI request to an external OpenAI-compatible engine (vLLM, llama-server, Ollama, another
/// Sovereign) and relays the answer, streaming included. The client's model id is restored in every response and
/// usage is always requested upstream, so the gateway can meter and audit what the engine did.
/// </summary>
internal sealed class UpstreamProxy(IHttpMessageHandlerFactory handlers, ILogger<UpstreamProxy> logger, Microsoft.Extensions.Options.IOptions<Hosting.SovereignOptions> options)
{
    private const string NodeFailedMessage = "The node serving this request stopped before it finished; try again.";

    /// <summary>How long an engine may send nothing, before its headers or in the middle of its answer (<c>Sovereign:Limits:UpstreamIdleTimeoutSeconds</c>).</summary>
    public TimeSpan Idle => TimeSpan.FromSeconds(options.Value.Limits.UpstreamIdleTimeoutSeconds);

    /// <summary>Bytes of a streamed answer read ahead of a slow client at most (<c>Sovereign:Limits:RelayReadAheadBytes</c>).</summary>
    public long ReadAheadBytes => options.Value.Limits.RelayReadAheadBytes;

    /// <summary>What every relay may hold ahead of its client together (<c>Sovereign:Limits:RelayReadAheadTotalBytes</c>).</summary>
    public ReadAheadBudget ReadAheadBudget { get; } = new(options.Value.Limits.RelayReadAheadTotalBytes);

    /// <summary>
    /// The largest answer (a whole JSON answer, or one event of a stream) read from an engine: room for 2,048 embeddings
    /// of 3,072 dimensions or long answers with log probabilities, while an engine that never ends its answer or an
    /// event cannot exhaust the gateway's memory.
    /// </summary>
    public const int MaxAnswerBytes = 256 * 1024 * 1024;

    private static readonly MediaTypeHeaderValue JsonContentType = new("application/json") { CharSet = "utf-8" };

    /// <summary>
    /// Whether an engine's key can be sent as <c>Authorization: Bearer KEY</c>: visible ASCII without spaces. A key with a
    /// line break, a space or a non-ASCII character cannot be (the header is refused when a request is built, or is not one
    /// credential), so it is refused where it is given, at start or registration, not on every request as a 500.
    /// </summary>
    public static bool IsSendableKey(string key) => key.Length > 0 && key.All(c => c is > ' ' and < (char)0x7F);

    /// <summary>The named HttpClient used for upstream calls.</summary>
    public const string ClientName = "sovereign-upstream";

    /// <summary>
    /// The named HttpClient for the cluster's own nodes: over https it accepts only a node certificate of the cluster CA
    /// (not the machine's trust store) and presents this gateway's cluster certificate.
    /// </summary>
    public const string ClusterNodeClientName = "sovereign-cluster-node";

    /// <summary>
    /// How long an idle connection to an engine is kept: well under the 5 s after which llama-server and uvicorn close
    /// one, since their clock starts when they sent the answer's end and this pool's when the relay finished reading it
    /// (at 4 s, a loaded gateway still sent 2 of 240 requests on connections the engine was closing).
    /// </summary>
    public static readonly TimeSpan IdleConnectionTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The address of <paramref name="path"/> under an engine's <c>/v1</c>, made once per engine and path: two URIs
    /// parsed for every relayed request were a tenth of the relay's own allocations.
    /// </summary>
    public Uri EngineUrl(string baseUrl, string path)
    {
        if (_urls.TryGetValue((baseUrl, path), out var url))
        {
            return url;
        }

        url = new Uri(new Uri(baseUrl.TrimEnd('/') + "/"), "v1/" + path);
        if (_urls.Count < MaxKeptUrls)
        {
            _urls.TryAdd((baseUrl, path), url);
        }

        return url;
    }

    /// <summary>Engines times endpoints kept by <see cref="EngineUrl"/>; past it (engines re-registered at new addresses many times) each is parsed again.</summary>
    private const int MaxKeptUrls = 4096;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string BaseUrl, string Path), Uri> _urls = new();

    /// <summary>
    /// Sends the request to <paramref name="url"/> (an engine's endpoint, <see cref="EngineUrl"/>, or an address outside
    /// its <c>/v1</c>, such as a node's <c>/tokenize</c>) and waits for the engine's response headers. Throws
    /// <see cref="UpstreamUnreachableException"/> when no connection could be made: nothing reached the engine, so the
    /// request may safely go elsewhere.
    /// </summary>
    public async Task<HttpResponseMessage> OpenAtAsync(
        Uri url, string? upstreamKey, JsonObject body, string upstreamModel, CancellationToken aborted, string clientName = ClientName,
        IReadOnlyList<(string Name, string Value)>? headers = null, bool usageOnEveryEvent = false, CancellationTokenSource? idleTimer = null, Action? sent = null)
    {
        ArgumentNullException.ThrowIfNull(url);
        var stream = body["stream"]?.GetValueKind() == JsonValueKind.True;
        body["model"] = upstreamModel;
        if (stream)
        {
            body["stream_options"] = usageOnEveryEvent
                ? new JsonObject { ["include_usage"] = true, ["continuous_usage_stats"] = true }
                : new JsonObject { ["include_usage"] = true };
        }

        return await OpenAtAsync(url, upstreamKey, JsonSerializer.SerializeToUtf8Bytes(body), aborted, clientName, headers, idleTimer, sent);
    }

    /// <summary>
    /// As <see cref="OpenAtAsync(Uri, string?, JsonObject, string, CancellationToken, string, IReadOnlyList{ValueTuple{string, string}}?, bool, CancellationTokenSource?, Action?)"/>,
    /// with the body's bytes ready to send (<see cref="RelayRequestBody.Write"/>). <paramref name="idleTimer"/>, when
    /// given, is a source linked to <paramref name="aborted"/> that the caller owns and goes on using for the answer
    /// (<see cref="RelayAsync"/>): one timer per relay, not one for the headers and another for the body.
    /// <paramref name="sent"/>, when given, runs once the request is on its connection, before its answer is awaited.
    /// </summary>
    public async Task<HttpResponseMessage> OpenAtAsync(
        Uri url, string? upstreamKey, byte[] content, CancellationToken aborted, string clientName = ClientName, IReadOnlyList<(string Name, string Value)>? headers = null,
        CancellationTokenSource? idleTimer = null, Action? sent = null)
    {
        ArgumentNullException.ThrowIfNull(url);

        // The headers must come in time; the body is read under the client's own token afterwards.
        var seconds = options.Value.Limits.UpstreamIdleTimeoutSeconds;
        using var own = idleTimer is null ? CancellationTokenSource.CreateLinkedTokenSource(aborted) : null;
        var waiting = idleTimer ?? own!;
        waiting.CancelAfter(TimeSpan.FromSeconds(seconds));

        // The named client's handler through an invoker, not an HttpClient: a client made per request brought its own
        // cancellation source, and each send linked it with ours (a source and two registrations per relay). Both
        // clients have no timeout of their own (the timer above is the relay's) and return at the headers, as here.
        using var client = new HttpMessageInvoker(handlers.CreateHandler(clientName), disposeHandler: false);
        for (var attempt = 1; ; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url)
            {
                Content = new ByteArrayContent(content) { Headers = { ContentType = JsonContentType } },
            };
            if (!string.IsNullOrEmpty(upstreamKey))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", upstreamKey);
            }

            foreach (var (name, value) in headers ?? [])
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }

            try
            {
                var answer = client.SendAsync(request, waiting.Token);

                // The request is on its connection (on a pooled one, its bytes written in the send's synchronous part):
                // what was to follow its leaving runs now, on this thread, while the engine reads it.
                sent?.Invoke();
                return await answer;
            }
            catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
            {
                // Not failed over: the engine may be running the work, and another would run it a second time. Named in the
                // log (the client's error does not say which engine), as a silence mid-answer is.
                var message = $"The engine serving this model did not answer within {seconds} s; try again later.";
                Observability.GatewayLog.UpstreamAnswerInvalid(logger, url.Authority, "upstream_timeout", message);
                throw new OpenAIException(StatusCodes.Status504GatewayTimeout, message, "server_error", null, "upstream_timeout");
            }
            catch (HttpRequestException ex) when (attempt == 1 && ex.HttpRequestError == HttpRequestError.ResponseEnded && !aborted.IsCancellationRequested)
            {
                // The engine accepted the connection and closed it unanswered: a kept-alive connection it dropped as the
                // request went out on it (llama-server's and uvicorn's 5 s keep-alive), so it took no work. Tried once
                // more on another connection before the engine is called unreachable, which for a node's only engine
                // refused every request for 5 s (seen fronting llama-server under load).
                Observability.GatewayLog.EngineClosedConnection(logger, url.Authority, ex.Message);
            }
            catch (HttpRequestException ex) when (!aborted.IsCancellationRequested)
            {
                if (ex.InnerException is ControlPlane.EngineAddressRefusedException refused)
                {
                    // Never connected: the engine's URL names an address the rule refuses (stored or set where it was not
                    // checked). Fail closed, as unreachable (another replica may take it), and tell the operator which.
                    Observability.GatewayLog.EngineAddressRefused(logger, url.Authority, refused.Message);
                }

                // No connection, or it failed before the response headers came (the engine died or answered garbage): the
                // client has received nothing yet, so another replica the policy allows may take the request.
                throw new UpstreamUnreachableException(ex);
            }
        }
    }

    /// <summary>
    /// Relays an opened response to the client, streaming included, with the client's model id restored. When the
    /// engine fails mid-answer (a node killed), a stream ends with an error event and a JSON answer becomes a 503 with
    /// Retry-After (so does a stream that failed before its first event was written): the client is told, and what it
    /// received is what it is billed for.
    /// </summary>
    public async Task<UpstreamResult> RelayAsync(
        HttpContext context, HttpResponseMessage response, bool stream, bool clientWantsUsage, string clientModel, RelayProgress progress, CancellationTokenSource? idleTimer = null)
    {
        var aborted = context.RequestAborted;
        if (!response.IsSuccessStatusCode)
        {
            if (progress.TakeBeforeContent() is { } gate)
            {
                // Nothing was written yet: a decision that cannot be committed is this answer's 503 instead.
                await gate();
            }

            await PassErrorAsync(context, response);
            return new UpstreamResult(null, null, false);
        }

        try
        {
            return stream
                ? await RelayStreamAsync(context, response, clientModel, clientWantsUsage, progress, Idle, idleTimer)
                : await RelayJsonAsync(context, response, clientModel, progress, Idle, idleTimer);
        }
        catch (Residency.Audit.AuditUnavailableException ex) when (context.Response.HasStarted)
        {
            // This gateway's decision could not be committed after the node's headers and role chunk were passed on: no
            // content was sent, the relay is stopped, and the stream ends with the refusal (closed as refused, billed 0).
            await ServerSentEvents.WriteAsync(context.Response, new OpenAIErrorEnvelope(OpenAIErrorResults.MapStreamed(context, ex).ToError()), aborted);
            return new UpstreamResult(null, null, false);
        }
        catch (Exception ex) when (IsFailedMidAnswer(ex, aborted))
        {
            NoteRefusedBeforeContent(context, progress, ex);
            var failure = FailedMidAnswer(response, stream, progress, ex);
            if (!stream || !context.Response.HasStarted)
            {
                // Nothing written yet (a stream whose engine sent no event: an HTML page, an empty stream, a connection
                // lost before the first event): the failure is the answer's status, as for a JSON answer, not a 200
                // event stream holding only an error event.
                throw failure;
            }

            OpenAIErrorResults.CountPassedOnRefusal(context, failure);
            await ServerSentEvents.WriteAsync(context.Response, new JsonObject
            {
                ["error"] = new JsonObject
                {
                    ["message"] = failure.Message,
                    ["type"] = failure.Type,
                    ["param"] = null,
                    ["code"] = failure.Code,
                },
            }, aborted);
            return new UpstreamResult(null, null, false);
        }
    }

    /// <summary>
    /// Whether an exception while reading an answer means the engine failed (it went away, or sent an answer that
    /// cannot be metered), not the client.
    /// </summary>
    public static bool IsFailedMidAnswer(Exception ex, CancellationToken aborted) =>
        ex is IOException or HttpRequestException or UpstreamAnswerException or UpstreamErrorEventException && !aborted.IsCancellationRequested;

    /// <summary>
    /// Logs an engine that failed mid-answer and returns what the client is told: 503 <c>node_failed</c> (retry in a
    /// second) when it went away, 502 naming the problem when its answer cannot be metered.
    /// </summary>
    public OpenAIException FailedMidAnswer(HttpResponseMessage response, bool stream, RelayProgress progress, Exception? error = null)
    {
        var authority = response.RequestMessage?.RequestUri?.Authority;
        if (error is UpstreamErrorEventException engineError)
        {
            // The engine's own error, as it would have answered it unstreamed; only its failures concern the operator.
            if (engineError.Error.Code is OpenAIErrorResults.AuditUnavailableCode or OpenAIErrorResults.StorageUnavailableCode or OpenAIErrorResults.DatabaseDamagedCode)
            {
                // A cluster node (another Sovereign) that could not record the request in its database ended its stream
                // with its refusal, after its headers: not a fault of the node (it logs and counts its outage). It was
                // logged as "failed mid-answer" (4102); passed on in the stream, it is counted where it is written
                // (OpenAIErrorResults.CountPassedOnRefusal), as the middleware counts it unstreamed.
                Observability.GatewayLog.NodeRefusedMidAnswer(logger, authority, engineError.Error.Code, progress.DeliveredChunks);
            }
            else if (engineError.Error.Status >= StatusCodes.Status500InternalServerError)
            {
                Observability.GatewayLog.UpstreamFailedMidAnswer(logger, authority, stream, progress.DeliveredChunks);
            }

            return engineError.Error;
        }

        if (error is UpstreamAnswerException invalid)
        {
            Observability.GatewayLog.UpstreamAnswerInvalid(logger, authority, invalid.Code, invalid.Message);
            return new OpenAIException(StatusCodes.Status502BadGateway, invalid.Message, "server_error", null, invalid.Code);
        }

        Observability.GatewayLog.UpstreamFailedMidAnswer(logger, authority, stream, progress.DeliveredChunks);
        return new OpenAIException(StatusCodes.Status503ServiceUnavailable, NodeFailedMessage, "server_error", null, "node_failed", TimeSpan.FromSeconds(1));
    }

    /// <summary>
    /// The engine's error, as OpenAI's error object (<see cref="UpstreamErrors"/>: its message, a 5xx becomes 502). A
    /// redirect is never followed (its target may lie outside the route's jurisdiction) nor passed on: it is a 502.
    /// Logged like every error answer; a redirect or the engine refusing the gateway's key also names the engine
    /// (event 4103), since only the operator can mend either. A cluster node's own database refusal (its 503
    /// <c>audit_unavailable</c> or <c>storage_unavailable</c>) is counted in <c>sovereign_database_refusals</c> here too, as
    /// the error middleware counts one thrown through the pipeline: answered here, it was logged (4001) but not counted.
    /// </summary>
    public static async Task PassErrorAsync(HttpContext context, HttpResponseMessage response)
    {
        var error = await ErrorOfAsync(context, response);
        OpenAIErrorResults.CountPassedOnRefusal(context, error);
        await OpenAIErrorResults.AnswerAsync(context, error);
    }

    /// <summary>
    /// The error an engine's non-success answer becomes for the client (as <see cref="PassErrorAsync"/> answers it),
    /// logged where only the operator can mend it; for callers that throw it through the pipeline instead.
    /// </summary>
    public static async Task<OpenAIException> ErrorOfAsync(HttpContext context, HttpResponseMessage response)
    {
        var error = (int)response.StatusCode < 400
            ? new OpenAIException(StatusCodes.Status502BadGateway,
                $"The upstream engine answered with a redirect ({(int)response.StatusCode}); the gateway does not follow redirects, whose target may lie outside the jurisdiction this request was routed to.",
                "server_error", null, "upstream_redirect_refused")
            : await UpstreamErrors.ToOpenAIAsync(response, context.RequestAborted);
        if (error.Code is "upstream_redirect_refused" or "upstream_auth_failed" or "upstream_model_not_found")
        {
            Observability.GatewayLog.UpstreamAnswerInvalid(OpenAIErrorResults.RequestsLogger(context), response.RequestMessage?.RequestUri?.Authority, error.Code, error.Message);
        }

        if (error.Status == StatusCodes.Status400BadRequest)
        {
            context.Items[RefusedAsInvalidKey] = true;
        }

        return error;
    }

    private static readonly object RefusedAsInvalidKey = new();

    /// <summary>
    /// An engine's 400 sent as an event of its 200 stream before any content (llama-server's prompt over its context)
    /// refuses the request as the client's mistake, as that 400 sent before the stream does: nothing billed, and the
    /// request given back to the rate limit (<see cref="RefusedAsInvalid"/>). It stayed counted. Any other error event
    /// before content (a cluster node's <c>audit_unavailable</c>) is billed nothing either
    /// (<see cref="RelayProgress.RefusedBeforeContent"/>), the client gone meanwhile or not.
    /// </summary>
    internal static void NoteRefusedBeforeContent(HttpContext context, RelayProgress progress, Exception error)
    {
        if (error is not UpstreamErrorEventException engineError || progress.DeliveredChunks != 0 || progress.Reported is not null)
        {
            return;
        }

        // Any error event before content (a 5xx too: a node's audit_unavailable after its role chunk) bills nothing.
        progress.RefusedBeforeContent = true;
        if (engineError.Error.Status == StatusCodes.Status400BadRequest)
        {
            context.Items[RefusedAsInvalidKey] = true;
        }
    }

    /// <summary>
    /// Whether the server this request was relayed to refused it as the client's mistake (its answer became the client's
    /// 400: a token id outside its model's vocabulary, which only the serving node can check, a prompt over its
    /// context), so no work was done there.
    /// </summary>
    public static bool RefusedAsInvalid(HttpContext context) => context.Items.ContainsKey(RefusedAsInvalidKey);

    /// <summary>
    /// Reads a whole (not streamed) answer and records its usage. What the engine did is what the tenant pays for: an
    /// answer whose usage cannot be read throws <see cref="UpstreamAnswerException"/> and is not passed on.
    /// </summary>
    public static async Task<JsonObject> ReadJsonAsync(HttpResponseMessage response, RelayProgress progress, TimeSpan idle, CancellationToken aborted) =>
        ReadJson(await ReadAnswerAsync(response, idle, aborted), progress);

    private static JsonObject ReadJson(JsonNode answer, RelayProgress progress)
    {
        if (answer is JsonArray { Count: > 0 } completions && completions.All(c => c is JsonObject))
        {
            // llama-server answers several prompts with one completion each, in an array: one answer, as OpenAI gives.
            var merged = MergeCompletions(completions);
            progress.Reported = ReadUsage(merged["usage"]);
            progress.Gather(merged);
            return merged;
        }

        var json = answer as JsonObject ?? throw NotAnObject("response");
        progress.Reported = ReadUsage(json["usage"]);
        progress.Gather(json);
        return json;
    }

    /// <summary>
    /// One completion from llama-server's completions of several prompts: the first one's fields, every choice (each
    /// carries its prompt's index) and the usages summed; a usage that cannot be read throws as for one answer.
    /// </summary>
    private static JsonObject MergeCompletions(JsonArray completions)
    {
        var merged = (JsonObject)completions[0]!.DeepClone();
        var choices = new JsonArray();
        var usages = new List<UpstreamUsage>(completions.Count);
        foreach (var completion in completions)
        {
            usages.Add(ReadUsage(completion!["usage"]));
            foreach (var choice in completion["choices"] as JsonArray ?? [])
            {
                choices.Add(choice?.DeepClone());
            }
        }

        var usage = Sum(usages);
        merged["choices"] = choices;
        merged["usage"] = new JsonObject
        {
            ["prompt_tokens"] = usage.PromptTokens,
            ["completion_tokens"] = usage.CompletionTokens,
            ["total_tokens"] = usage.PromptTokens + usage.CompletionTokens,

            // Summed as the counts are: without it the client read no cached tokens and the ledger recorded none.
            ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = usage.CachedTokens },
        };
        return merged;
    }

    /// <summary>Token counts added up (several prompts' usage); a sum past <see cref="int.MaxValue"/> cannot be metered.</summary>
    private static UpstreamUsage Sum(IEnumerable<UpstreamUsage> usages)
    {
        long prompt = 0, completion = 0, cached = 0;
        foreach (var usage in usages)
        {
            (prompt, completion, cached) = (prompt + usage.PromptTokens, completion + usage.CompletionTokens, cached + usage.CachedTokens);
        }

        return prompt + completion > int.MaxValue
            ? throw InvalidUsage("the prompts' counts add up past what can be metered")
            : new UpstreamUsage((int)prompt, (int)completion, (int)cached);
    }

    /// <summary>
    /// Reads a whole answer as a JSON object, at most <see cref="MaxAnswerBytes"/>; anything else throws
    /// <see cref="UpstreamAnswerException"/>.
    /// </summary>
    public static async Task<JsonObject> ReadObjectAsync(HttpResponseMessage response, TimeSpan idle, CancellationToken aborted) =>
        await ReadAnswerAsync(response, idle, aborted) as JsonObject ?? throw NotAnObject("response");

    /// <summary>Reads a whole answer as JSON, at most <see cref="MaxAnswerBytes"/>; anything else throws <see cref="UpstreamAnswerException"/>.</summary>
    private static async Task<JsonNode> ReadAnswerAsync(HttpResponseMessage response, TimeSpan idle, CancellationToken aborted)
    {
        var (buffer, filled) = await ReadAnswerBytesAsync(response, idle, aborted);
        try
        {
            return ParseNode(buffer.AsSpan(0, filled), "response");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Reads a whole answer's bytes, at most <see cref="MaxAnswerBytes"/>, into a buffer rented from the shared pool
    /// that the caller returns. <paramref name="idleTimer"/>: the relay's own timer (<see cref="OpenAtAsync(Uri, string?, byte[], CancellationToken, string, IReadOnlyList{ValueTuple{string, string}}?, CancellationTokenSource?, Action?)"/>), else one of its own.
    /// </summary>
    private static async Task<(byte[] Buffer, int Filled)> ReadAnswerBytesAsync(HttpResponseMessage response, TimeSpan idle, CancellationToken aborted, CancellationTokenSource? idleTimer = null)
    {
        var announced = response.Content.Headers.ContentLength;
        if (announced > MaxAnswerBytes)
        {
            throw TooLarge("answer");
        }

        // Read into pooled memory, sized by the announced length where there is one: an answer costs no buffer of its own.
        var buffer = ArrayPool<byte>.Shared.Rent(announced is > 0 and var length ? (int)length + 1 : 16 * 1024);
        try
        {
            var filled = 0;
            using var own = idleTimer is null ? CancellationTokenSource.CreateLinkedTokenSource(aborted) : null;
            var silent = idleTimer ?? own!;
            await using (var answer = await response.Content.ReadAsStreamAsync(aborted))
            {
                while (true)
                {
                    if (filled == buffer.Length)
                    {
                        var larger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, MaxAnswerBytes + 1));
                        buffer.AsSpan(0, filled).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = larger;
                    }

                    // An engine that stops sending in the middle of its answer held the client and its route slot for good.
                    silent.CancelAfter(idle);
                    int read;
                    try
                    {
                        read = await answer.ReadAsync(buffer.AsMemory(filled), silent.Token);
                    }
                    catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
                    {
                        throw Silent(idle);
                    }

                    if (read == 0)
                    {
                        break;
                    }

                    filled += read;
                    if (filled > MaxAnswerBytes)
                    {
                        throw TooLarge("answer");
                    }
                }
            }

            return (buffer, filled);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    /// <summary>
    /// Reads a streamed answer's chunks up to <c>[DONE]</c>, recording the usage the engine reports; the caller counts
    /// the chunks it delivers (<see cref="CarriesTokens"/>, <see cref="RelayProgress.Delivered"/>). The gateway always
    /// asks for the usage chunk: a stream that ends without one cannot be metered as the engine counted it, so it ends
    /// in <see cref="UpstreamAnswerException"/> (the client is told, and billed for the chunks relayed). An error the
    /// engine sends in the stream (llama-server's <c>error:</c> line, vLLM's <c>data: {"error": ...}</c>) ends it in
    /// <see cref="UpstreamErrorEventException"/> with that error.
    /// </summary>
    public static async IAsyncEnumerable<JsonObject> ReadChunksAsync(
        HttpResponseMessage response, RelayProgress progress, TimeSpan idle, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken aborted,
        CancellationTokenSource? idleTimer = null)
    {
        var meter = new StreamMeter(progress);
        await foreach (var line in ReadEventsAsync(response, progress, idle, aborted, idleTimer))
        {
            yield return meter.Read(line);
        }
    }

    /// <summary>
    /// The data lines of a streamed answer up to <c>[DONE]</c> (each line whole, <c>data:</c> included), as
    /// <see cref="ReadChunksAsync"/> reads them: an engine's <c>error:</c> line, its silence past
    /// <paramref name="idle"/> and a stream that ends without usage end it in the same exceptions; comments are read
    /// for a node's compute report. What each event says is the caller's to read (<see cref="StreamMeter"/>).
    /// </summary>
    private static async IAsyncEnumerable<byte[]> ReadEventsAsync(
        HttpResponseMessage response, RelayProgress progress, TimeSpan idle, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken aborted,
        CancellationTokenSource? idleTimer)
    {
        var answer = await response.Content.ReadAsStreamAsync(aborted);
        if (progress.EngineDone is { } engineDone && progress.ReadAheadBytes > 0)
        {
            // Read ahead of the client, so the engine's slot is free once it has answered, however slowly the client reads.
            answer = new ReadAheadStream(answer, progress.ReadAheadBytes, engineDone, progress.ReadAheadBudget);
        }

        await using var lines = new Utf8LineReader(answer, MaxAnswerBytes);
        using var own = idleTimer is null ? CancellationTokenSource.CreateLinkedTokenSource(aborted) : null;
        var silent = idleTimer ?? own!;
        while (true)
        {
            // An engine that stops sending in the middle of a stream held the client and its route slot for good.
            silent.CancelAfter(idle);
            byte[]? line;
            try
            {
                line = await lines.ReadLineAsync(silent.Token);
            }
            catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
            {
                throw Silent(idle);
            }

            if (line is null)
            {
                break;
            }

            progress.EngineAnswered?.Invoke();
            if (line.AsSpan().StartsWith("error:"u8))
            {
                throw new UpstreamErrorEventException(UpstreamErrors.FromStreamEvent(line.AsSpan(ValueStart(line, "error:".Length))));
            }

            if (!DataOf(line, out var done))
            {
                if (Pipeline.RelayComputeReport.IsComment(line, out var computeSeconds))
                {
                    progress.ReportedComputeSeconds = computeSeconds;
                }

                continue;
            }

            if (done)
            {
                break;
            }

            yield return line;
        }

        if (progress.Reported is null || progress.UsageSoFar)
        {
            throw InvalidUsage("the stream ended without a usage chunk");
        }
    }

    /// <summary>Reads one event of a stream as a tree, recording the usage the engine reports (its state: llama-server's usage per prompt).</summary>
    private sealed class StreamMeter(RelayProgress progress)
    {
        private Dictionary<int, UpstreamUsage>? _perPrompt;

        public JsonObject Read(byte[] line)
        {
            var chunk = ParseObject(line.AsSpan(DataStart(line)), "stream chunk");
            if (chunk["error"] is not null && chunk["choices"] is null)
            {
                throw new UpstreamErrorEventException(UpstreamErrors.FromStreamEvent(line.AsSpan(DataStart(line))));
            }

            // Engines send "usage": null on content chunks (as OpenAI does); a usage that is there must be valid. OpenAI and
            // vLLM report the request's once, on a chunk without choices; llama-server reports each prompt's on that
            // prompt's last chunk (one choice, the prompt's index), and the request is billed their sum.
            if (chunk["usage"] is { } usageNode)
            {
                var usage = ReadUsage(usageNode);
                if (!progress.UsageOnEveryEvent && chunk["choices"] is JsonArray { Count: 1 } choices && choices[0]?["index"] is JsonValue index && index.TryGetValue<int>(out var prompt))
                {
                    _perPrompt ??= [];
                    _perPrompt[prompt] = usage;
                    usage = Sum(_perPrompt.Values);
                }

                progress.Reported = usage;
                progress.UsageSoFar = progress.UsageOnEveryEvent && chunk["choices"] is JsonArray { Count: > 0 };
            }

            progress.Gather(chunk);
            return chunk;
        }
    }

    private static UpstreamAnswerException Silent(TimeSpan idle) =>
        new("upstream_timeout", $"The engine sent nothing for {idle.TotalSeconds:0} s in the middle of its answer; the answer ends here.");

    private static async Task<UpstreamResult> RelayJsonAsync(
        HttpContext context, HttpResponseMessage response, string clientModel, RelayProgress progress, TimeSpan idle, CancellationTokenSource? idleTimer)
    {
        var (buffer, filled) = await ReadAnswerBytesAsync(response, idle, context.RequestAborted, idleTimer);

        // The engine has answered: its slot is free while the answer is written to the client, however slowly it reads.
        progress.EngineDone?.Invoke();
        try
        {
            var answer = buffer.AsSpan(0, filled);
            progress.ReadResponseId(answer);
            // An answer with tool calls takes the node path: their ids may need making distinct (RelayedCallIds).
            if (progress.Completion is null && answer.IndexOf("\"tool_calls\""u8) < 0
                && JsonAnswerRewrite.TryRewrite(answer, clientModel, out var relayed, out var usage))
            {
                // The common answer, in one pass over its bytes (the same bytes the node path writes).
                progress.Reported = usage;
                return new UpstreamResult(usage, null, false, relayed);
            }

            var json = ReadJson(ParseNode(answer, "response"), progress);
            json["model"] = clientModel;
            new RelayedCallIds().Apply(json);
            return new UpstreamResult(progress.Reported, json, false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task<UpstreamResult> RelayStreamAsync(
        HttpContext context, HttpResponseMessage response, string clientModel, bool clientWantsUsage, RelayProgress progress, TimeSpan idle, CancellationTokenSource? idleTimer)
    {
        ServerSentEvents.Start(context.Response);
        var callIds = new RelayedCallIds();
        var meter = new StreamMeter(progress);

        // The common event in one pass over its bytes (StreamEventRewrite); the tree below for what it leaves: the
        // completion's text gathered for the language tax, usage on every event, tool calls, anything unusual.
        var rewrites = progress.Completion is null && !progress.UsageOnEveryEvent;
        // Events written: only the first (the node's role chunk) may leave before BeforeContent.
        var events = 0;
        await foreach (var line in ReadEventsAsync(response, progress, idle, context.RequestAborted, idleTimer))
        {
            progress.ReadResponseId(line.AsSpan(DataStart(line)));
            if (rewrites && StreamEventRewrite.TryRewrite(line.AsSpan(DataStart(line)), clientModel, clientWantsUsage, out var read))
            {
                if (read.Usage is { } usage)
                {
                    progress.Reported = usage;
                    progress.UsageSoFar = false;
                }

                if (read.Written is { } written)
                {
                    try
                    {
                        if (Observability.FirstTokenMarks.On && read.CarriesTokens && progress.DeliveredChunks == 0)
                        {
                            Observability.FirstTokenMarks.Mark(context, "content");
                        }

                        if ((events > 0 || read.CarriesTokens) && progress.TakeBeforeContent() is { } gate)
                        {
                            await gate();
                        }

                        events++;
                        await context.Response.Body.WriteAsync(written.AsMemory(0, read.Length), context.RequestAborted);
                        await context.Response.Body.FlushAsync(context.RequestAborted);
                        if (Observability.FirstTokenMarks.On && events == 1)
                        {
                            Observability.FirstTokenMarks.Mark(context, "event1");
                        }

                        if (Observability.FirstTokenMarks.On && read.CarriesTokens && progress.DeliveredChunks == 0)
                        {
                            Observability.FirstTokenMarks.Mark(context, "written");
                        }
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(written);
                    }

                    if (read.CarriesTokens)
                    {
                        progress.Delivered();
                    }
                }

                continue;
            }

            var chunk = meter.Read(line);
            if (progress.UsageOnEveryEvent && !progress.PassesUsageSoFar && chunk["usage"] is JsonObject && chunk["choices"] is JsonArray { Count: > 0 })
            {
                // Asked for the gateway's metering; a client sees usage where OpenAI puts it, on the last event alone.
                chunk.Remove("usage");
            }
            else if (!clientWantsUsage && chunk["usage"] is JsonObject)
            {
                // The gateway asked for usage to meter the request; a client that did not is not sent it.
                if (chunk["choices"] is JsonArray { Count: 0 })
                {
                    continue;
                }

                chunk.Remove("usage");
            }

            chunk["model"] = clientModel;
            callIds.Apply(chunk);
            var carriesTokens = CarriesTokens(chunk);
            if ((events > 0 || carriesTokens) && progress.TakeBeforeContent() is { } before)
            {
                await before();
            }

            events++;
            await ServerSentEvents.WriteAsync(context.Response, chunk, context.RequestAborted);
            if (carriesTokens)
            {
                progress.Delivered();
            }
        }

        if (progress.TakeBeforeContent() is { } last)
        {
            // A stream of one event: its end waits for the evidence too.
            await last();
        }

        return new UpstreamResult(progress.Reported, null, true);
    }

    /// <summary>Whether an event-stream line carries data, and whether that data is the final <c>[DONE]</c>.</summary>
    private static bool DataOf(byte[] line, out bool done)
    {
        done = false;
        if (!line.AsSpan().StartsWith("data:"u8))
        {
            return false;
        }

        done = line.AsSpan(DataStart(line)).TrimEnd(" \t\r"u8).SequenceEqual("[DONE]"u8);
        return true;
    }

    /// <summary>Where a data line's value starts: after <c>data:</c> and any spaces.</summary>
    private static int DataStart(byte[] line) => ValueStart(line, "data:".Length);

    /// <summary>Where a line's value starts: after its field name and colon (<paramref name="fieldLength"/> bytes) and any spaces.</summary>
    private static int ValueStart(byte[] line, int fieldLength)
    {
        var start = fieldLength;
        while (start < line.Length && line[start] is (byte)' ' or (byte)'\t')
        {
            start++;
        }

        return start;
    }

    private static UpstreamAnswerException TooLarge(string what) =>
        new("upstream_answer_too_large", $"The upstream engine's {what} is larger than {MaxAnswerBytes / (1024 * 1024)} MiB, so it was not relayed; the operator must check the engine.");

    private static JsonObject ParseObject(ReadOnlySpan<byte> utf8, string what) =>
        ParseNode(utf8, what) as JsonObject ?? throw NotAnObject(what);

    private static JsonNode ParseNode(ReadOnlySpan<byte> utf8, string what)
    {
        try
        {
            return JsonNode.Parse(utf8) ?? throw NotAnObject(what);
        }
        catch (JsonException)
        {
            // Not the parser's message: it may quote the text, and content is never logged.
            throw new UpstreamAnswerException("upstream_invalid_response", $"The upstream engine returned a {what} that is not valid JSON.");
        }
    }

    private static UpstreamAnswerException NotAnObject(string what) =>
        new("upstream_invalid_response", $"The upstream engine returned a {what} that is not a JSON object.");

    /// <summary>Whether a streamed chunk carries generated output (not just a role, a finish reason or usage).</summary>
    public static bool CarriesTokens(JsonObject chunk)
    {
        if (chunk["choices"] is not JsonArray choices)
        {
            return false;
        }

        foreach (var choice in choices)
        {
            if (choice?["delta"] is JsonObject delta
                && ((delta["content"] is JsonValue content && content.GetValueKind() == JsonValueKind.String && content.GetValue<string>().Length > 0)
                    || delta["tool_calls"] is JsonArray))
            {
                return true;
            }

            if (choice?["text"] is JsonValue text && text.GetValueKind() == JsonValueKind.String && text.GetValue<string>().Length > 0)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The engine's token counts: an object with non-negative integer <c>prompt_tokens</c> and <c>completion_tokens</c>.</summary>
    private static UpstreamUsage ReadUsage(JsonNode? usage)
    {
        if (usage is not JsonObject counts)
        {
            throw InvalidUsage(usage is null ? "the answer has no usage object" : "usage is not an object");
        }

        var prompt = Count(counts, "prompt_tokens");
        return new UpstreamUsage(prompt, Count(counts, "completion_tokens"), CachedTokens(counts, prompt));
    }

    /// <summary>
    /// An embeddings answer's <c>usage.prompt_tokens</c>; null when the engine reported none (no usage, or no count in
    /// it). A count that is there must be a non-negative integer, else <see cref="UpstreamAnswerException"/>.
    /// </summary>
    public static int? ReadPromptTokens(JsonNode? usage)
    {
        if (usage is null)
        {
            return null;
        }

        if (usage is not JsonObject counts)
        {
            throw InvalidUsage("usage is not an object");
        }

        return counts["prompt_tokens"] is null ? null : Count(counts, "prompt_tokens");
    }

    private static int Count(JsonObject usage, string field) =>
        usage[field] is JsonValue value && value.GetValueKind() == JsonValueKind.Number && value.TryGetValue<int>(out var count) && count >= 0
            ? count
            : throw InvalidUsage($"usage.{field} is {(usage[field] is null ? "missing" : "not a non-negative integer")}");

    private static UpstreamAnswerException InvalidUsage(string problem) =>
        new("upstream_invalid_usage", $"The upstream engine's token usage cannot be read ({problem}), so the request cannot be metered; the operator must check the engine.");

    /// <summary>The engine's <c>prompt_tokens_details.cached_tokens</c> (vLLM, llama-server report it), within 0..prompt.</summary>
    private static int CachedTokens(JsonObject usage, int promptTokens) =>
        usage["prompt_tokens_details"] is JsonObject details && details["cached_tokens"] is JsonValue cached && cached.TryGetValue<int>(out var value)
            ? Math.Clamp(value, 0, promptTokens)
            : 0;
}

/// <summary>No connection to the engine could be made: nothing was sent, so another replica may take the request.</summary>
internal sealed class UpstreamUnreachableException(Exception inner) : Exception("The upstream engine could not be reached: " + inner.Message, inner)
{
    /// <summary>What failed, innermost first (a refused connection, a reset), for the operator's log.</summary>
    public string Reason => InnerException!.GetBaseException() is var cause && cause != InnerException ? $"{cause.Message} ({Message})" : Message;
}

/// <summary>
/// The engine sent an error inside its event stream: <see cref="Error"/> is what the client gets, as the status of the
/// answer when nothing was written yet, else as the stream's last event.
/// </summary>
internal sealed class UpstreamErrorEventException(OpenAIException error) : Exception(error.Message)
{
    public OpenAIException Error { get; } = error;
}

/// <summary>
/// The engine answered, but not in a form the gateway can relay and meter (invalid JSON, unreadable usage): a 502 with
/// <see cref="Code"/>, or an error event in a stream already started.
/// </summary>
internal sealed class UpstreamAnswerException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}
