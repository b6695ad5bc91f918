using System.Text.Json;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Pipeline.Executors;
using Sovereign.Inference.Engine;
using Sovereign.Residency.Policies;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// <c>POST /v1/responses</c>, streaming (typed events) and not. The request is translated into the chat workload
/// (<see cref="ResponsesTranslation"/>) and runs on the same governed pipeline as chat: residency, metering, audit and
/// accounting on every exit. Stateless: nothing is stored, so <c>store: true</c> and <c>previous_response_id</c> are
/// refused (OpenAI's default <c>store</c> is true; an absent <c>store</c> means false here).
/// </summary>
internal static class ResponsesEndpoint
{
    public static async Task HandleAsync(HttpContext context, RequestPipeline pipeline, IOptions<SovereignOptions> options, TimeProvider time)
    {
        var limits = options.Value.Limits;
        var caller = await pipeline.AuthenticateAsync(context);
        var request = await RequestReader.ReadAsync<ResponsesRequest>(context);
        RefuseStorage(request, caller);
        ResponsesTranslation.RefuseUnsupported(request);
        var turns = ResponsesTranslation.ToTurns(request);
        var grammar = ResponsesTranslation.GrammarFor(request.Text?.Format);
        if (limits.MaxOutputTokens > 0 && request.MaxOutputTokens > limits.MaxOutputTokens)
        {
            throw OpenAIException.BadRequest(
                $"max_output_tokens is {request.MaxOutputTokens}, above this server's limit of {limits.MaxOutputTokens}.", "max_output_tokens", "invalid_value");
        }

        var work = new GenerationWorkload
        {
            Model = request.Model,
            LanguageSample = turns.LastOrDefault(t => t.Role == "user").Content ?? turns[^1].Content,
            Endpoint = "responses",
            RelaysUpstream = false,
            Turns = turns,
            Sampling = new SamplingOptions { Temperature = request.Temperature ?? 1f, TopP = request.TopP ?? 1f },
            RequestedMaxTokens = request.MaxOutputTokens,
            MaxTokens = request.MaxOutputTokens ?? (limits.MaxOutputTokens > 0 ? limits.MaxOutputTokens : null),
            MaxTokensParameter = "max_output_tokens",
            Stop = [],
            N = 1,
            Stream = request.Stream == true,
            Grammar = grammar,
        };
        await using var governed = await pipeline.StartAsync(context, caller, work);
        var local = (LocalGeneration)governed.Execution!;
        var shape = new ResponseShape(
            GenerationRun.NewId("resp_"), GenerationRun.NewId("msg_"), time.GetUtcNow().ToUnixTimeSeconds(), governed.Route!.Model, request);
        if (work.Stream)
        {
            await StreamAsync(governed, local, shape);
            return;
        }

        var (text, result, _) = (await local.Run.CollectAsync())[0];
        await governed.CompleteAsync();
        await TypedResults.Json(shape.Final(text, result, local), OpenAIJson.Options).ExecuteAsync(context);
    }

    /// <summary>
    /// Storing responses keeps content, which only a tenant policy with content retention allows; this server keeps
    /// no response store yet, so even then the request is refused, with a different message.
    /// </summary>
    private static void RefuseStorage(ResponsesRequest request, Caller caller)
    {
        var param = request.Store == true ? "store" : request.PreviousResponseId is not null ? "previous_response_id" : null;
        if (param is null)
        {
            return;
        }

        var retention = caller.Policy?.Retention ?? RetentionPolicy.None;
        if (retention.Mode != RetentionMode.Store)
        {
            throw OpenAIException.BadRequest(
                $"{param} needs responses to be stored, but your policy's retention is '{retention}': no prompt or completion content may be kept. " +
                "Send store: false (or omit it) and the whole conversation as input.", param, "content_retention_not_allowed");
        }

        throw OpenAIException.BadRequest(
            $"{param} needs a response store, which this server does not have yet (your policy would allow retention: '{retention}'). " +
            "Send store: false (or omit it) and the whole conversation as input.", param, "unsupported_parameter");
    }

    /// <summary>Streams OpenAI's typed events; the books close before <c>response.completed</c> (which carries the usage).</summary>
    private static async Task StreamAsync(GovernedRequest governed, LocalGeneration local, ResponseShape shape)
    {
        var response = governed.Http.Response;
        var aborted = governed.Aborted;
        var sequence = 0;
        async Task Send(ResponseEvent e)
        {
            e.SequenceNumber = sequence++;
            await ServerSentEvents.WriteEventAsync(response, e.Type, e, aborted);
        }

        ServerSentEvents.Start(response);
        var started = shape.InProgress();
        await Send(new ResponseLifecycleEvent("response.created", started));
        await Send(new ResponseLifecycleEvent("response.in_progress", started));
        await Send(new OutputItemEvent("response.output_item.added", 0, new ResponseMessageItem(shape.MessageId, "in_progress", [])));
        await Send(new ContentPartEvent("response.content_part.added", shape.MessageId, 0, 0, new OutputText("")));
        var text = new System.Text.StringBuilder();
        GenerationResult? result = null;
        try
        {
            await foreach (var (_, update) in local.Run.StreamAsync(aborted))
            {
                if (update.Text.Length > 0)
                {
                    text.Append(update.Text);
                    await Send(new OutputTextDeltaEvent(shape.MessageId, 0, 0, update.Text));
                }

                result = update.Result ?? result;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Headers are sent: the error goes in the stream; the books close (as failed) when the request is disposed.
            var error = OpenAIErrorResults.Map(ex, 0);
            await Send(new ResponseErrorEvent(error.Code, error.Message, error.Param));
            return;
        }

        var final = shape.Final(text.ToString(), result!, local);
        var item = final.Output[0];
        await Send(new OutputTextDoneEvent(shape.MessageId, 0, 0, item.Content[0].Text));
        await Send(new ContentPartEvent("response.content_part.done", shape.MessageId, 0, 0, item.Content[0]));
        await Send(new OutputItemEvent("response.output_item.done", 0, item));
        await governed.CompleteAsync();
        await Send(new ResponseLifecycleEvent(final.Status == "completed" ? "response.completed" : "response.incomplete", final));
    }

    /// <summary>What every response object of one request shares, echoing the request's settings as OpenAI does.</summary>
    private sealed record ResponseShape(string Id, string MessageId, long CreatedAt, string Model, ResponsesRequest Request)
    {
        public ResponseObject InProgress() => Base("in_progress", [], null, null);

        public ResponseObject Final(string text, GenerationResult result, LocalGeneration local)
        {
            // A generation cut by its token limit (or the context's end) is incomplete, as OpenAI reports it.
            var incomplete = result.FinishReason == FinishReason.Length;
            var status = incomplete ? "incomplete" : "completed";
            var usage = new ResponseUsage(
                local.PromptTokens, new InputTokensDetails(local.CachedTokens), result.CompletionTokens, new OutputTokensDetails(0), local.PromptTokens + result.CompletionTokens);
            return Base(status, [new ResponseMessageItem(MessageId, status, [new OutputText(text)])], usage, incomplete ? new IncompleteDetails("max_output_tokens") : null);
        }

        private ResponseObject Base(string status, IReadOnlyList<ResponseMessageItem> output, ResponseUsage? usage, IncompleteDetails? incomplete) => new()
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
            Usage = usage,
            User = Request.User,
            Metadata = Request.Metadata ?? [],
        };

        private static object FormatEcho(ResponsesTextFormat? format) => format?.Type switch
        {
            "json_schema" => new { type = "json_schema", name = format.Name, description = format.Description, schema = format.Schema, strict = format.Strict },
            "json_object" => new { type = "json_object" },
            _ => new { type = "text" },
        };
    }
}
