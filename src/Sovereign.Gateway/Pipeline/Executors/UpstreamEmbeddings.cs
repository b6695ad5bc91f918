using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.Pipeline.Executors;

/// <summary>
/// An embeddings request relayed to an external engine or a remote node (<c>POST /v1/embeddings</c> there). The answer
/// is all or nothing, like a local embedding: billed at the engine's <c>usage.prompt_tokens</c> once a valid answer
/// with one vector per input came back, at nothing otherwise (an error, a failed or aborted call).
/// </summary>
internal sealed class UpstreamEmbeddings(UpstreamProxy proxy, GovernedRequest request, HttpResponseMessage response, RelayCompute compute, IDisposable slot, IDisposable inFlight) : IExecution
{
    /// <summary>
    /// Tokens a tokenizer may add to one text input beyond its bytes: BOS/EOS (llama.cpp, Qwen) or [CLS]/[SEP] (BERT).
    /// </summary>
    internal const int SpecialTokensPerInput = 2;

    private int _tokens;
    private int _slotGiven;

    // What the answer reported, for the timing (an embeddings answer has no stream to deliver).
    private readonly RelayProgress _answered = new();

    /// <summary>
    /// The most prompt tokens the inputs can be, with the engine's tokenizer unknown: a text's UTF-8 bytes (a token
    /// covers at least one) plus <see cref="SpecialTokensPerInput"/>, and one per token id plus the same allowance
    /// (vLLM feeds ids as given, but an engine may still add BOS/EOS around them): the reservation is a true bound.
    /// </summary>
    public static long Bound(EmbeddingWorkload work)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (work.TokenInputs is { } ids)
        {
            return ids.Sum(t => (long)t.Length + SpecialTokensPerInput);
        }

        long bound = 0;
        foreach (var input in work.Inputs)
        {
            bound += Encoding.UTF8.GetByteCount(input) + SpecialTokensPerInput;
        }

        return bound;
    }

    /// <summary>
    /// The body sent upstream: the client's, asking for floats (the gateway encodes base64 itself, so every engine is
    /// asked what all of them speak) and never a stream (embeddings have none; a stray <c>stream</c> would make the
    /// relay ask for usage chunks).
    /// </summary>
    public static JsonObject RelayBody(ReadOnlyMemory<byte> raw)
    {
        var body = JsonNode.Parse(raw.Span) as JsonObject ?? throw OpenAIException.BadRequest("The request body must be a JSON object.");
        body.Remove("encoding_format");
        body.Remove("stream");
        body.Remove("stream_options");
        return body;
    }

    /// <summary>
    /// Reads the engine's answer and writes OpenAI's embeddings object in the client's <paramref name="format"/>. The
    /// books close before the answer is written; every failure is thrown (the request's disposal bills nothing):
    /// the engine's own error as OpenAI's (a 5xx as 502), an answer that cannot be read or metered as 502, an engine
    /// that went away mid-answer as 503.
    /// </summary>
    public async Task RespondAsync(string format)
    {
        var context = request.Http;
        if (!response.IsSuccessStatusCode)
        {
            throw await UpstreamProxy.ErrorOfAsync(context, response);
        }

        JsonObject answer;
        int tokens;
        try
        {
            answer = await UpstreamProxy.ReadObjectAsync(response, proxy.Idle, context.RequestAborted);
            var work = (EmbeddingWorkload)request.Work;
            Encode(answer, work.TokenInputs?.Count ?? work.Inputs.Count, format);

            // vLLM honours dimensions for Matryoshka models; llama-server and Ollama ignore it and send the model's own.
            // Vectors of another length are not what the client sized its index for: refused as a local model refuses it.
            if (work.Dimensions is { } dimensions && !HasDimensions(answer, dimensions))
            {
                throw OpenAIException.BadRequest($"The model '{request.Route!.Model}' does not support choosing dimensions.", "dimensions", "unsupported_parameter");
            }

            // Engines report usage (vLLM, llama-server, Ollama, Sovereign); one that does not is billed the reservation's
            // bound, which the inputs cannot exceed.
            tokens = UpstreamProxy.ReadPromptTokens(answer["usage"]) ?? (int)Math.Min(int.MaxValue, request.Demand.PromptTokens);
        }
        catch (Exception ex) when (UpstreamProxy.IsFailedMidAnswer(ex, context.RequestAborted))
        {
            throw proxy.FailedMidAnswer(response, stream: false, new RelayProgress(), ex);
        }

        answer["object"] = "list";
        answer["model"] = request.Route!.Model;
        answer["usage"] = new JsonObject { ["prompt_tokens"] = tokens, ["total_tokens"] = tokens };
        _tokens = tokens;
        _answered.Reported = new UpstreamUsage(tokens, 0, 0);
        var bytes = JsonSerializer.SerializeToUtf8Bytes(answer, OpenAIJson.Options);
        var held = HoldForClient(bytes.Length);
        try
        {
            await request.CompleteAsync();
            context.Response.StatusCode = StatusCodes.Status200OK;
            context.Response.ContentType = OpenAIJson.ContentType;
            await context.Response.Body.WriteAsync(bytes, context.RequestAborted);
        }
        finally
        {
            proxy.ReadAheadBudget.Return(held);
        }
    }

    /// <summary>
    /// The engine has answered, whole: its slot and in-flight count are given back now, before the client is written
    /// to, when the answer fits the relay's read-ahead (<c>Sovereign:Limits:RelayReadAheadBytes</c>) and the bytes all
    /// relays hold ahead of their clients (<see cref="ReadAheadBudget"/>) as a streamed relay's are. They were held
    /// until the client had read the answer: a client reading slowly, or not at all, kept the engine's place while it
    /// sat idle and another tenant waited behind it. Refused (too large, or the budget spent), the slot is held while
    /// the client reads, as before. Returns the bytes taken from the budget, to give back once written.
    /// </summary>
    private int HoldForClient(int bytes)
    {
        if (proxy.ReadAheadBytes <= 0 || bytes > proxy.ReadAheadBytes || !proxy.ReadAheadBudget.TryTake(bytes))
        {
            return 0;
        }

        GiveBackSlot();
        return bytes;
    }

    /// <summary>Gives the route's slot and the node's in-flight count back, once (here or at the request's end).</summary>
    private void GiveBackSlot()
    {
        if (Interlocked.Exchange(ref _slotGiven, 1) == 0)
        {
            inFlight.Dispose();
            slot.Dispose();
        }
    }

    /// <summary>
    /// Checks that the answer holds one embedding per input and writes each in <paramref name="format"/>: a float array
    /// as base64 of its little-endian float32 values (as the local path encodes them), or base64 back to floats.
    /// </summary>
    private static void Encode(JsonObject answer, int inputs, string format)
    {
        if (answer["data"] is not JsonArray data || data.Count != inputs)
        {
            throw Invalid(answer["data"] is JsonArray wrong
                ? $"The upstream engine returned {wrong.Count} embeddings for {inputs} inputs."
                : "The upstream engine's answer has no data array of embeddings.");
        }

        for (var i = 0; i < data.Count; i++)
        {
            if (data[i] is not JsonObject item)
            {
                throw Invalid($"The upstream engine's data[{i}] is not an embedding object.");
            }

            switch (item["embedding"])
            {
                case JsonArray values when format == "base64":
                    var floats = new float[values.Count];
                    for (var j = 0; j < floats.Length; j++)
                    {
                        floats[j] = values[j] is JsonValue value && value.GetValueKind() == JsonValueKind.Number && value.TryGetValue<float>(out var f)
                            ? f
                            : throw Invalid($"The upstream engine's data[{i}].embedding[{j}] is not a number.");
                    }

                    item["embedding"] = Convert.ToBase64String(MemoryMarshal.AsBytes(floats.AsSpan()));
                    break;
                case JsonArray:
                    break;
                case JsonValue encoded when encoded.GetValueKind() == JsonValueKind.String:
                    var bytes = Base64(encoded.GetValue<string>(), i);
                    if (format != "base64")
                    {
                        item["embedding"] = new JsonArray([.. MemoryMarshal.Cast<byte, float>(bytes).ToArray().Select(v => (JsonNode?)JsonValue.Create(v))]);
                    }

                    break;
                default:
                    throw Invalid($"The upstream engine's data[{i}].embedding is neither an array of numbers nor base64.");
            }

            item["index"] ??= i;
        }
    }

    /// <summary>Whether every vector of an encoded answer has <paramref name="dimensions"/> values.</summary>
    private static bool HasDimensions(JsonObject answer, int dimensions) =>
        ((JsonArray)answer["data"]!).All(item => item!["embedding"] switch
        {
            JsonArray values => values.Count == dimensions,
            JsonValue encoded => encoded.GetValue<string>().Length == 4 * ((dimensions * sizeof(float) + 2) / 3),
            _ => false,
        });

    private static byte[] Base64(string text, int index)
    {
        try
        {
            var bytes = Convert.FromBase64String(text);
            return bytes.Length % sizeof(float) == 0 ? bytes : throw Invalid($"The upstream engine's data[{index}].embedding is not whole float32 values.");
        }
        catch (FormatException)
        {
            throw Invalid($"The upstream engine's data[{index}].embedding is not valid base64.");
        }
    }

    private static UpstreamAnswerException Invalid(string message) => new("upstream_invalid_response", message + " It was not relayed; the operator must check the engine.");

    /// <summary>Embeddings are all or nothing: billed only once a valid answer came back.</summary>
    public ValueTask<ExecutedUsage> FinalUsageAsync() =>
        ValueTask.FromResult(new ExecutedUsage(_tokens, 0, _tokens == 0 ? null : compute.Timing(_tokens, 0, _answered, response)));

    public ValueTask DisposeAsync()
    {
        compute.Dispose();
        response.Dispose();
        GiveBackSlot();
        return ValueTask.CompletedTask;
    }
}
