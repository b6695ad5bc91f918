using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Observability;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.OpenAI;

/// <summary>Writes every failure of the <c>/v1</c> surface as OpenAI's error JSON with the right status.</summary>
internal static class OpenAIErrorResults
{
    /// <summary>The wait before a retry in milliseconds, beside <c>Retry-After</c>'s whole seconds (rounded up).</summary>
    public const string RetryAfterMsHeader = "retry-after-ms";

    /// <summary>The error code of a request whose framing (a body cut short, broken chunks) could not be read, as Kestrel's own 400.</summary>
    public const string MalformedRequestCode = "malformed_request";

    /// <summary>The error code of a request refused because its audit entry could not be committed.</summary>
    public const string AuditUnavailableCode = "audit_unavailable";

    /// <summary>The error code of a request whose local model was unloaded, or whose server is stopping, under it (503).</summary>
    public const string ModelUnavailableCode = "model_unavailable";

    /// <summary>
    /// Maps an exception that ends a response already under way (an error event in its stream) as <see cref="Map"/>
    /// does, and counts a refusal because the database is down (<c>sovereign_database_refusals</c>, the outage's count
    /// in event 4161) as the error middleware counts one answered before the headers: a node's streamed
    /// <c>audit_unavailable</c> went uncounted on both sides.
    /// </summary>
    public static OpenAIException MapStreamed(HttpContext context, Exception exception)
    {
        var error = Map(exception, 0);
        if (error.Code is AuditUnavailableCode or StorageUnavailableCode or DatabaseDamagedCode
            && context.RequestServices.GetService<ControlPlane.DatabaseHealth>() is { } database && (database.IsOutage(exception) || database.Damaged is not null))
        {
            database.CountRefusal();
            GatewayLog.ErrorAnswered(RequestsLogger(context), context, error.Status, error.Type, error.Code, error.Param, exception, byACaller: true, databaseOutage: true);
        }

        return error;
    }

    /// <summary>
    /// Counts (<c>sovereign_database_refusals</c>) a cluster node's own refusal passed on to the client, its 503 or the
    /// error event that ended its stream: the node could not record the request in its database (it counts it too, as
    /// its own answer). Any other error is not counted.
    /// </summary>
    public static void CountPassedOnRefusal(HttpContext context, OpenAIException error)
    {
        if (error is { Status: >= 500, Code: AuditUnavailableCode or StorageUnavailableCode or DatabaseDamagedCode })
        {
            context.RequestServices.GetService<ControlPlane.DatabaseHealth>()?.CountRefusal();
        }
    }

    /// <summary>Maps an exception from request handling to the client-facing error.</summary>
    public static OpenAIException Map(Exception exception, long maxBodyBytes) => exception switch
    {
        OpenAIException e => e,
        // Stored data found damaged, however it reached here (the audit log's commit, a grain's read): it does not heal
        // by retrying at once, and nothing more is run on it (DatabaseHealth.Damaged). It was a 500 internal_error.
        _ when ControlPlane.DatabaseHealth.Damage(exception) is not null => DatabaseDamaged(),
        BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => OpenAIException.TooLarge(maxBodyBytes),
        // A body that stops arriving (below Kestrel's minimum data rate) keeps Kestrel's 408, which SDKs retry.
        BadHttpRequestException { StatusCode: StatusCodes.Status408RequestTimeout } => new OpenAIException(StatusCodes.Status408RequestTimeout,
            "The request body arrived too slowly and was not read in time; send it again at once.", "invalid_request_error", null, "request_timeout"),
        BadHttpRequestException e => new OpenAIException(e.StatusCode is >= 400 and < 500 ? e.StatusCode : StatusCodes.Status400BadRequest,
            "The request could not be read: " + e.Message, "invalid_request_error", null, MalformedRequestCode),
        InvalidGenerationRequestException e => OpenAIException.BadRequest(e.Message, e.Parameter, e.Code),
        ContextLengthExceededException e => OpenAIException.BadRequest(e.Message, e.Parameter, "context_length_exceeded"),
        EngineOverloadedException e => OpenAIException.Overloaded(e.Message),
        TenantQueueFullException e => new OpenAIException(StatusCodes.Status429TooManyRequests, e.Message, "requests", null, "tenant_queue_full", TimeSpan.FromSeconds(1)),
        EngineStoppedException e => new OpenAIException(StatusCodes.Status503ServiceUnavailable, e.Message, "server_error", null, ModelUnavailableCode, TimeSpan.FromSeconds(5)),
        // The executor is rebuilt at once, so a retry runs on a fresh context; 500 is what SDKs retry (vLLM answers 500 too).
        EngineDecodeFailedException e => new OpenAIException(StatusCodes.Status500InternalServerError, e.Message, "server_error", null, "engine_decode_failed"),

        // Fail closed: what is not evidence does not run. The storage may come back, so the client retries.
        Residency.Audit.AuditUnavailableException => new OpenAIException(StatusCodes.Status503ServiceUnavailable,
            "The audit log could not record this request, so it was not run, or its answer was withheld (fail closed). Try again.",
            "server_error", null, AuditUnavailableCode, TimeSpan.FromSeconds(5)),

        // A node that said it did not start the request, when no failover is left: its own refusal, as it answered.
        Pipeline.Executors.NodeUnreachableException { NodeAnswer: { } answer } => answer,
        // A cluster member that just died holds a grain until membership declares it dead (seconds): retryable.
        Pipeline.Executors.NodeUnreachableException e => new OpenAIException(StatusCodes.Status503ServiceUnavailable,
            $"{e.Message} Every failover this request may take was used; try again.", "server_error", null, "node_unreachable", TimeSpan.FromSeconds(1)),
        // A grain whose member cannot be reached (money, keys, pool counts), or the cluster's Redis (the grain directory a
        // new activation registers in; it was a 500 while Redis was down): the cluster is healing, so the client retries.
        Orleans.Runtime.OrleansMessageRejectionException or Orleans.Runtime.SiloUnavailableException or Orleans.Runtime.Messaging.ConnectionFailedException
            or Orleans.Runtime.GatewayTooBusyException or Orleans.Runtime.ClientNotAvailableException or TimeoutException or StackExchange.Redis.RedisConnectionException =>
            new OpenAIException(StatusCodes.Status503ServiceUnavailable, "A cluster member needed for this request is not reachable right now; try again.", "server_error", null, "cluster_unavailable", TimeSpan.FromSeconds(5)),
        // Orleans' Redis grain directory reports Redis unreachable as an OrleansException that holds the Redis error as
        // text, not as its inner exception ("Lookup failed for apikey/... : StackExchange.Redis.RedisConnectionException: ...").
        Orleans.Runtime.OrleansException e when IsRedisUnreachable(e) =>
            new OpenAIException(StatusCodes.Status503ServiceUnavailable, "A cluster member needed for this request is not reachable right now; try again.", "server_error", null, "cluster_unavailable", TimeSpan.FromSeconds(5)),

        // The database is down or a connection to it broke (PostgreSQL restarting), or it refuses writes or stops
        // statements now (a read-only standby, statement_timeout; DatabaseFailures): nothing was run or billed that the
        // client did not get, and it comes back, so the client retries. It was a 500 without Retry-After for each request.
        System.Data.Common.DbException db when Sovereign.Storage.DatabaseFailures.IsUnavailable(db) => StorageUnavailable(),
        Cluster.Grains.StorageUnavailableException => StorageUnavailable(),
        _ => new OpenAIException(StatusCodes.Status500InternalServerError, "The server had an error while processing your request.", "server_error", null, "internal_error"),
    };

    /// <summary>The error code of a request refused because the database's stored data is damaged.</summary>
    public const string DatabaseDamagedCode = "database_damaged";

    /// <summary>
    /// 503 <c>database_damaged</c>: the database's stored data is damaged, so the request was refused (fail closed),
    /// with nothing decided, reserved or billed that it did not deliver; a client may try again later, once the operator
    /// restored the database (<c>Retry-After</c> 30 s).
    /// </summary>
    public static OpenAIException DatabaseDamaged() => new(StatusCodes.Status503ServiceUnavailable,
        "The database this server keeps tenants, keys, usage and its audit log in is damaged, so this request was refused (fail closed) and nothing was billed for it; the operator must restore the database. Try again later.",
        "server_error", null, DatabaseDamagedCode, TimeSpan.FromSeconds(30));

    private static OpenAIException StorageUnavailable() => new(StatusCodes.Status503ServiceUnavailable,
        "The database this server keeps tenants, keys and usage in is not reachable right now; try again.", "server_error", null, StorageUnavailableCode, TimeSpan.FromSeconds(5));

    private static bool IsRedisUnreachable(Orleans.Runtime.OrleansException e) =>
        e.InnerException is StackExchange.Redis.RedisConnectionException or StackExchange.Redis.RedisTimeoutException
        || e.Message.Contains(typeof(StackExchange.Redis.RedisConnectionException).FullName!, StringComparison.Ordinal)
        || e.Message.Contains(typeof(StackExchange.Redis.RedisTimeoutException).FullName!, StringComparison.Ordinal);

    /// <summary>The error code of a request that met the database unreachable.</summary>
    public const string StorageUnavailableCode = "storage_unavailable";

    /// <summary>
    /// The error middleware: catches every exception of a request, logs it with a stable event id (refusal, shedding
    /// or fault) and answers with OpenAI's error JSON.
    /// </summary>
    public static async Task HandleAsync(HttpContext context, RequestDelegate next)
    {
        // Work under /v1 is watched for a stop whose grace runs out while its answer streams (ShutdownCut).
        using var watch = HttpMethods.IsPost(context.Request.Method) && context.Request.Path.StartsWithSegments("/v1", StringComparison.Ordinal)
            && context.RequestServices.GetService<ShutdownCut>() is { } cut
            ? cut.Watch(context)
            : null;
        try
        {
            await next(context);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && ShutdownCut.WasCut(context))
        {
            // The stop's grace ran out under a started answer: its books closed (billed for what it delivered), and the
            // client is told in the stream instead of meeting a reset connection.
            GatewayLog.StreamCutAtShutdown(RequestsLogger(context), context.Request.Method, GatewayLog.LoggedPath(context));
            await TellCutAsync(context);
        }
        catch (Exception ex) when (ClientLeft(context, ex))
        {
            // No one is left to answer: neither a refusal nor a fault (any client could fill the log with either).
            GatewayLog.ClientLeft(RequestsLogger(context), context.Request.Method, GatewayLog.LoggedPath(context));

            // Closed here, so Kestrel does not drain a body whose read failed (it logged an error of its own, event 67).
            context.Abort();
        }
        catch (Exception ex) when (!context.RequestAborted.IsCancellationRequested || ex is not OperationCanceledException)
        {
            var configured = context.RequestServices.GetRequiredService<IOptions<SovereignOptions>>().Value.Limits.MaxRequestBodyBytes;
            var error = Map(ex, BodyLimit(context, configured));
            if (ControlPlane.ProvisionalAuthorization.Unconfirmed(context) is { } provisional)
            {
                // Refused before admission (a malformed body, an unknown model) while the caller's key was authorized
                // from this gateway's cache: a key revoked or a tenant disabled since is answered as authentication
                // answers it, as when every request asked the tenant's grain first.
                error = await ConfirmedAsync(context, provisional) ?? error;
            }

            var logger = RequestsLogger(context);
            // A request refused because the data is damaged (at once, DatabaseHealth.Damaged) is one of the outage's refusals too.
            var databaseOutage = error.Code is AuditUnavailableCode or StorageUnavailableCode or DatabaseDamagedCode
                && context.RequestServices.GetService<ControlPlane.DatabaseHealth>() is { } database && (database.IsOutage(ex) || database.Damaged is not null);
            if (databaseOutage)
            {
                context.RequestServices.GetRequiredService<ControlPlane.DatabaseHealth>().CountRefusal();
            }
            else if (ex is OpenAIException passedOn)
            {
                CountPassedOnRefusal(context, passedOn);
            }

            GatewayLog.ErrorAnswered(logger, context, error.Status, error.Type, error.Code, error.LoggedParam ?? error.Param, ex, await ByACallerAsync(context, error.Status), databaseOutage);
            await WriteAsync(context, error);
        }
    }

    /// <summary>
    /// Ends an answer the stop cut (<see cref="ShutdownCut"/>) with OpenAI's error event: a Responses stream's typed
    /// <c>error</c> event, any other event stream's <c>data: {"error": ...}</c>. Nothing else can be said once bytes left.
    /// </summary>
    private static async Task TellCutAsync(HttpContext context)
    {
        var response = context.Response;
        if (response.ContentType?.StartsWith("text/event-stream", StringComparison.Ordinal) != true)
        {
            return;
        }

        // The client is still there (only the stop cut it): written with its own connection's token.
        var client = ShutdownCut.ClientToken(context);
        try
        {
            if (context.Request.Path.StartsWithSegments("/v1/responses", StringComparison.Ordinal))
            {
                var error = new ResponseErrorEvent(ShutdownCut.Code, ShutdownCut.Message, null) { SequenceNumber = ResponsesSequence.Next(context) };
                await ServerSentEvents.WriteEventAsync(response, error.Type, error, client);
            }
            else
            {
                await ServerSentEvents.WriteAsync(response, new OpenAIErrorEnvelope(new OpenAIException(StatusCodes.Status503ServiceUnavailable, ShutdownCut.Message,
                    "server_error", null, ShutdownCut.Code).ToError()), client);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // Gone meanwhile: nobody to tell.
        }
    }

    /// <summary>The 401/403 for a provisional authorization the tenant's grain no longer confirms; null when it does (or does not answer).</summary>
    private static async Task<OpenAIException?> ConfirmedAsync(HttpContext context, ControlPlane.ProvisionalAuthorization provisional)
    {
        try
        {
            await context.RequestServices.GetRequiredService<ControlPlane.CallerAuthenticator>().ConfirmAsync(provisional);
            return null;
        }
        catch (OpenAIException unauthorized)
        {
            KnownCallers.Forget(context);
            return unauthorized;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>
    /// Whether <paramref name="exception"/> says the client reset its connection: Kestrel fails the body's read with
    /// <see cref="ConnectionResetException"/>, or with another I/O error once it has seen the connection aborted.
    /// </summary>
    private static bool ClientLeft(HttpContext context, Exception exception) =>
        exception is ConnectionResetException
        || (exception is IOException and not BadHttpRequestException && context.RequestAborted.IsCancellationRequested);

    /// <summary>
    /// Gives a body to error statuses that the framework answers without one (405, or a 404 outside /v1), so every
    /// error a client sees is OpenAI's error object. Use with <c>UseStatusCodePages</c>.
    /// </summary>
    public static Task WriteStatusCodePageAsync(Microsoft.AspNetCore.Diagnostics.StatusCodeContext statusCode)
    {
        var context = statusCode.HttpContext;
        var status = context.Response.StatusCode;
        var error = new OpenAIException(status,
            status switch
            {
                StatusCodes.Status404NotFound => $"Unknown request URL: {context.Request.Method} {context.Request.Path}.{WithoutV1Hint(context.Request)}",
                StatusCodes.Status405MethodNotAllowed => $"The method {context.Request.Method} is not allowed for {context.Request.Path}.",
                _ => $"The request failed with HTTP status {status}.",
            },
            status >= 500 ? "server_error" : "invalid_request_error",
            null,
            status switch
            {
                StatusCodes.Status404NotFound => "unknown_url",
                StatusCodes.Status405MethodNotAllowed => "method_not_allowed",
                _ => null,
            });
        return AnswerAsync(context, error);
    }

    /// <summary>The OpenAI endpoints this server answers under <c>/v1</c>, which clients of LiteLLM's proxy also sent without it.</summary>
    private static readonly string[] OpenAIPathsWithoutV1 = ["/chat/completions", "/completions", "/embeddings", "/models", "/responses"];

    /// <summary>
    /// A hint for an OpenAI endpoint asked without <c>/v1</c> (<c>POST /chat/completions</c>): LiteLLM's proxy answers
    /// both, and its documentation sets an SDK's base URL to the server's root, so a client moved here as configured
    /// got a bare "Unknown request URL" with nothing saying what to change.
    /// </summary>
    internal static string WithoutV1Hint(HttpRequest request) =>
        OpenAIPathsWithoutV1.Any(p => request.Path.Equals(p, StringComparison.OrdinalIgnoreCase) || request.Path.StartsWithSegments(p, StringComparison.OrdinalIgnoreCase))
            ? $" The OpenAI API is served under /v1: end the client's base URL with /v1 (this endpoint is /v1{request.Path})."
            : "";

    /// <summary>Answers with <paramref name="error"/>, logged like every error answer (refusal, shedding or fault).</summary>
    public static async Task AnswerAsync(HttpContext context, OpenAIException error)
    {
        GatewayLog.ErrorAnswered(RequestsLogger(context), context, error.Status, error.Type, error.Code, error.LoggedParam ?? error.Param, null,
            await ByACallerAsync(context, error.Status));
        await WriteAsync(context, error);
    }

    /// <summary>
    /// Whether a refusal is a caller's (logged at Information) rather than what anyone who reaches the port can send (at
    /// Debug: a 401, or, once /v1 needs a key, anything refused before a caller was authenticated: an unknown URL, a
    /// wrong method, an unknown query parameter, each a line with a path of the sender's choosing).
    /// </summary>
    private static async ValueTask<bool> ByACallerAsync(HttpContext context, int status)
    {
        if (status == StatusCodes.Status401Unauthorized)
        {
            return false;
        }

        if (KnownCallers.IsKnown(context) || context.RequestServices.GetService<ControlPlane.CallerAuthenticator>() is not { } authenticator)
        {
            return true;
        }

        try
        {
            return await authenticator.AnyoneMayCallAsync();
        }
        catch (Exception ex) when (ex is System.Data.Common.DbException or InvalidOperationException or TimeoutException)
        {
            // The database that says whether tenants exist is unreachable: the refusal is logged as before, not lost.
            return true;
        }
    }

    /// <summary>The logger of the requests category, where every error answer is logged.</summary>
    public static ILogger RequestsLogger(HttpContext context) =>
        context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(GatewayLog.RequestsCategory);

    public static async Task WriteAsync(HttpContext context, OpenAIException error)
    {
        if (context.Response.HasStarted)
        {
            return;
        }

        // Evidence and rate-limit headers survive: a refusal is audited, and a 429 tells the client when to retry; so
        // does a 405's Allow, which names the methods the URL takes (RFC 9110).
        var evidence = context.Response.Headers.Where(h => h.Key.StartsWith("x-sovereign-", StringComparison.OrdinalIgnoreCase)
            || h.Key.StartsWith("x-ratelimit-", StringComparison.OrdinalIgnoreCase) || h.Key.Equals("Allow", StringComparison.OrdinalIgnoreCase)).ToList();
        context.Response.Clear();
        foreach (var header in evidence)
        {
            context.Response.Headers[header.Key] = header.Value;
        }

        context.Response.StatusCode = error.Status;
        if (error.RetryAfter is { } retry)
        {
            context.Response.Headers.RetryAfter = ((int)Math.Ceiling(retry.TotalSeconds)).ToString(CultureInfo.InvariantCulture);

            // OpenAI's Python and Node SDKs read this one first, and honour a wait under 60 s only: a 59.2 s wait said
            // as Retry-After 60 was ignored by them, and they retried at their own short backoff into another 429.
            context.Response.Headers[RetryAfterMsHeader] = Math.Max(1L, (long)Math.Ceiling(retry.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);
        }

        if (error.Final)
        {
            context.Response.Headers["x-should-retry"] = "false";
        }

        context.Response.ContentType = OpenAIJson.ContentType;
        await JsonSerializer.SerializeAsync(context.Response.Body, new OpenAIErrorEnvelope(error.ToError()), OpenAIJson.Options, context.RequestAborted);
    }

    /// <summary>The body limit in force for this request.</summary>
    public static long BodyLimit(HttpContext context, long configured) =>
        context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize ?? configured;
}
