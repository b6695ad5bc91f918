using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Embeddings;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.OpenAI;

/// <summary><c>POST /v1/embeddings</c> for GGUF embedding models and the built-in MiniLM.</summary>
internal static class EmbeddingsEndpoint
{
    public static async Task HandleAsync(HttpContext context, InferenceRouter router, RequestMetering metering, IOptions<SovereignOptions> options)
    {
        var limits = options.Value.Limits;
        var caller = await router.AuthenticateAsync(context);
        var request = await RequestReader.ReadAsync<EmbeddingRequest>(context);
        var inputs = ReadInputs(request.Input, limits.MaxEmbeddingInputs);
        var format = request.EncodingFormat ?? "float";
        if (format is not ("float" or "base64"))
        {
            throw OpenAIException.BadRequest("encoding_format must be 'float' or 'base64'.", "encoding_format", "invalid_value");
        }

        var routed = await router.RouteAsync(context, caller, request.Model, ModelKind.Embedding);
        var model = routed.Local!;

        var generator = model.Embeddings!;
        if (request.Dimensions is { } dimensions && dimensions != generator.GetService<EmbeddingGeneratorMetadata>()?.DefaultModelDimensions)
        {
            throw OpenAIException.BadRequest($"The model '{model.Id}' does not support choosing dimensions.", "dimensions", "unsupported_parameter");
        }

        // Refuse over-long inputs before any work, with the index of the first one.
        for (var i = 0; i < inputs.Count; i++)
        {
            if (model.CountTokens!(inputs[i]) is var count && count > model.MaxInputTokens)
            {
                throw OpenAIException.BadRequest(
                    $"input[{i}] has {count} tokens; the model '{model.Id}' accepts at most {model.MaxInputTokens}.", "input", "context_length_exceeded");
            }
        }

        var ticket = await metering.AdmitAsync(context, routed, inputs.Sum(i => (long)model.CountTokens!(i)), 0);
        GeneratedEmbeddings<Embedding<float>> embeddings;
        try
        {
            embeddings = await generator.GenerateAsync(inputs, cancellationToken: context.RequestAborted);
        }
        catch (InputTooLongException ex)
        {
            throw OpenAIException.BadRequest(
                $"input[{ex.InputIndex}] has {ex.TokenCount} tokens; the model '{model.Id}' accepts at most {ex.MaxTokens}.", "input", "context_length_exceeded");
        }

        var tokens = (int)(embeddings.Usage?.InputTokenCount ?? 0);
        await metering.FinishAsync(routed, ticket, tokens, 0, null, Sovereign.Metering.Ledger.UsageOutcome.Completed);
        await router.CompleteAsync(routed, tokens, 0, "completed");
        var data = embeddings.Select((e, i) => new EmbeddingItem("embedding", i, format == "base64"
            ? Convert.ToBase64String(MemoryMarshal.AsBytes(e.Vector.Span))
            : e.Vector.ToArray())).ToArray();
        await TypedResults.Json(new EmbeddingList("list", data, model.Id, new EmbeddingUsage(tokens, tokens)), OpenAIJson.Options).ExecuteAsync(context);
    }

    private static List<string> ReadInputs(JsonElement? input, int maxInputs)
    {
        if (input is not { } value || value.ValueKind == JsonValueKind.Null)
        {
            throw OpenAIException.BadRequest("You must provide an input parameter.", "input", "missing_required_parameter");
        }

        if (value.ValueKind == JsonValueKind.String)
        {
            return [NonEmpty(value.GetString()!, "input")];
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw OpenAIException.BadRequest("input must be a string or an array of strings.", "input", "invalid_type");
        }

        var count = value.GetArrayLength();
        if (count == 0 || count > maxInputs)
        {
            throw OpenAIException.BadRequest($"input must have between 1 and {maxInputs} items.", "input", "invalid_value");
        }

        var inputs = new List<string>(count);
        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw OpenAIException.BadRequest($"input[{i}] must be a string; token-id inputs are not supported.", $"input[{i}]", "invalid_type");
            }

            inputs.Add(NonEmpty(item.GetString()!, $"input[{i}]"));
            i++;
        }

        return inputs;
    }

    private static string NonEmpty(string text, string param) =>
        text.Length > 0 ? text : throw OpenAIException.BadRequest($"{param} must not be empty.", param, "invalid_value");
}
