using System.Text.Json;
using System.Text.Json.Nodes;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Pipeline.Executors;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Tools;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// Responses on a relayed route (an external engine, another node): the executor sent the request as a chat
/// completion (<see cref="GenerationWorkload.ChatRelayBody"/>); its answer, whole or streamed, becomes Responses'
/// output items and typed events here. Governance is the pipeline's, as for chat: the relay's progress bills an
/// answer cut short, and the books close before the client's last event.
/// </summary>
internal static partial class ResponsesEndpoint
{
    private static async Task RelayJsonAsync(GovernedRequest governed, UpstreamRelay relay, ResponseShape shape)
    {
        if (!relay.Response.IsSuccessStatusCode)
        {
            await UpstreamProxy.PassErrorAsync(governed.Http, relay.Response);
            await governed.FailAsync();
            return;
        }

        JsonObject answer;
        try
        {
            answer = await UpstreamProxy.ReadJsonAsync(relay.Response, relay.Progress, relay.Proxy.Idle, governed.Aborted);
        }
        catch (Exception ex) when (UpstreamProxy.IsFailedMidAnswer(ex, governed.Aborted))
        {
            throw relay.Proxy.FailedMidAnswer(relay.Response, false, relay.Progress, ex);
        }

        var choice = answer["choices"] is JsonArray { Count: > 0 } choices ? choices[0] as JsonObject : null;
        var message = choice?["message"] as JsonObject;
        var status = StatusOf(StringOf(choice?["finish_reason"]));
        var text = StringOf(message?["content"]) ?? "";
        var items = new List<object>();
        if (message?["tool_calls"] is JsonArray { Count: > 0 } calls)
        {
            if (!string.IsNullOrWhiteSpace(text))
            {
                items.Add(new ResponseMessageItem(shape.MessageId, status, [new OutputText(text)]));
            }

            var callIds = new HashSet<string>(StringComparer.Ordinal);
            foreach (var call in calls.OfType<JsonObject>())
            {
                var function = call["function"] as JsonObject;
                items.Add(new FunctionCallItem(
                    GenerationRun.NewId("fc_"), UniqueCallId(StringOf(call["id"]), callIds), StringOf(function?["name"]) ?? "", ArgumentsOf(function?["arguments"]), status));
            }
        }
        else
        {
            items.Add(new ResponseMessageItem(shape.MessageId, status, [new OutputText(text)]));
        }

        var response = shape.Final(items, status, UsageOf(relay.Progress));
        await shape.CloseAsync(governed, response);
        await TypedResults.Json(response, OpenAIJson.Options).ExecuteAsync(governed.Http);
    }

    private static async Task RelayStreamAsync(GovernedRequest governed, UpstreamRelay relay, ResponseShape shape, ChatTools? tools)
    {
        if (!relay.Response.IsSuccessStatusCode)
        {
            // Nothing was sent yet: the engine's refusal is the answer, as on chat.
            await UpstreamProxy.PassErrorAsync(governed.Http, relay.Response);
            await governed.FailAsync();
            return;
        }

        var aborted = governed.Aborted;
        var send = await StartEventsAsync(governed, shape);
        var output = new OutputItemStream(send, shape, ToolCallFormat.Hermes);
        if (tools is not { ParsesCalls: true })
        {
            await output.OpenMessageAsync();
        }

        string? finishReason = null;
        var callIds = new HashSet<string>(StringComparer.Ordinal);
        try
        {
                        await foreach (var chunk in UpstreamProxy.ReadChunksAsync(relay.Response, relay.Progress, relay.Proxy.Idle, aborted))
            {
                if (chunk["choices"] is not JsonArray { Count: > 0 } choices || choices[0] is not JsonObject choice)
                {
                    continue;
                }

                var delta = choice["delta"] as JsonObject;
                if (StringOf(delta?["content"]) is { Length: > 0 } text)
                {
                    await output.TextAsync(text);
                }

                if (delta?["tool_calls"] is JsonArray calls)
                {
                    foreach (var call in calls.OfType<JsonObject>())
                    {
                        // A call's first delta names it (id, function.name); later ones, of the same index, carry
                        // argument fragments, which an engine may interleave with another call's.
                        var index = call["index"] is JsonValue i && i.TryGetValue<int>(out var at) ? at : 0;
                        var function = call["function"] as JsonObject;
                        await output.RelayedCallAsync(index, () => StringOf(function?["name"]), () => UniqueCallId(StringOf(call["id"]), callIds),
                            function?["arguments"] is { } arguments ? ArgumentsOf(arguments) : "");
                    }
                }

                if (UpstreamProxy.CarriesTokens(chunk))
                {
                    relay.Progress.Delivered();
                }

                finishReason = StringOf(choice["finish_reason"]) ?? finishReason;
            }
        }
        catch (Exception ex) when (UpstreamProxy.IsFailedMidAnswer(ex, aborted))
        {
            UpstreamProxy.NoteRefusedBeforeContent(governed.Http, relay.Progress, ex);
            var failure = relay.Proxy.FailedMidAnswer(relay.Response, true, relay.Progress, ex);
            OpenAIErrorResults.CountPassedOnRefusal(governed.Http, failure);
            await send(new ResponseErrorEvent(failure.Code, failure.Message, failure.Param));
            return;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            var error = OpenAIErrorResults.MapStreamed(governed.Http, ex);
            await send(new ResponseErrorEvent(error.Code, error.Message, error.Param));
            return;
        }

        var status = StatusOf(finishReason);
        var items = await output.FinishAsync(status);
        var final = shape.Final(items, status, UsageOf(relay.Progress));
        await shape.CloseAsync(governed, final);
        await send(new ResponseLifecycleEvent(final.Status == "completed" ? "response.completed" : "response.incomplete", final));
    }

    /// <summary>
    /// The engine's call id, unless it gave none or one this answer already used: then one of our own. Some engines
    /// give two calls of one answer the same id (seen with Mistral's short ids and proxies of other models); as items of
    /// one response they shared a <c>call_id</c>, and sending them back with their outputs, as every agent loop does,
    /// was refused ("used by an earlier function_call item"), so the conversation could not go on.
    /// </summary>
    private static string UniqueCallId(string? engineId, HashSet<string> used)
    {
        var id = string.IsNullOrEmpty(engineId) || used.Contains(engineId) ? ChatTools.NewCallId(ToolCallFormat.Hermes) : engineId;
        used.Add(id);
        return id;
    }

    /// <summary>A chat finish reason as a response status: a token-limit end is incomplete.</summary>
    private static string StatusOf(string? finishReason) => finishReason == "length" ? "incomplete" : "completed";

    /// <summary>The engine's usage, or (when it reported none) one token per content chunk delivered, as the books count it.</summary>
    private static ResponseUsage UsageOf(RelayProgress progress) => progress.Reported is { } usage
        ? UsageOf(usage.PromptTokens, usage.CachedTokens, usage.CompletionTokens)
        : UsageOf(0, 0, progress.DeliveredChunks);

    private static string? StringOf(JsonNode? node) => node is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;

    /// <summary>Arguments as chat sends them (a JSON string); an engine that sends an object gets it written as JSON.</summary>
    private static string ArgumentsOf(JsonNode? arguments) => arguments switch
    {
        null => "",
        JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
        _ => arguments.ToJsonString(),
    };
}
