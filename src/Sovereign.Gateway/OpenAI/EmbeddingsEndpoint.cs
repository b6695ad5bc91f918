using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Pipeline.Executors;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// <c>POST /v1/embeddings</c> for GGUF embedding models and the built-in MiniLM, and relayed to an external engine's or
/// a cluster node's embedding model (<see cref="UpstreamEmbeddings"/>), in the same wire format either way.
/// </summary>
internal static class EmbeddingsEndpoint
{
    public static async Task HandleAsync(HttpContext context, RequestPipeline pipeline, IOptions<SovereignOptions> options)
    {
        var limits = options.Value.Limits;
        var caller = await pipeline.AuthenticateForAdmissionAsync(context);
        var request = await RequestReader.ReadAsync<EmbeddingRequest>(context, RequestFields.For<EmbeddingRequest>(caller, options.Value));
        RequestReader.RequireUser(request.User);
        var (inputs, tokenInputs) = TextInputs.ReadEmbeddingInput(request.Input, limits.MaxEmbeddingInputs);
        var format = request.EncodingFormat ?? "float";
        if (format is not ("float" or "base64"))
        {
            throw OpenAIException.BadRequest("encoding_format must be 'float' or 'base64'.", "encoding_format", "invalid_value");
        }

        // A relay forwards dimensions to the engine (vLLM honours it for Matryoshka models): only a count is sent.
        if (request.Dimensions is < 1)
        {
            throw OpenAIException.BadRequest($"dimensions must be at least 1; got {request.Dimensions}.", "dimensions", "invalid_value");
        }

        var work = new EmbeddingWorkload
        {
            Model = request.Model,
            LanguageSample = PromptTexts.OfBatch(inputs),
            Inputs = inputs,
            TokenInputs = tokenInputs,
            TokenInputsNested = request.Input is { ValueKind: JsonValueKind.Array } input && input[0].ValueKind == JsonValueKind.Array,
            TextInputsArray = request.Input is { ValueKind: JsonValueKind.Array } texts && texts[0].ValueKind == JsonValueKind.String,
            Dimensions = request.Dimensions,
        };
        await using var governed = await pipeline.StartAsync(context, caller, work);
        if (governed.Execution is UpstreamEmbeddings relayed)
        {
            await relayed.RespondAsync(format);
            return;
        }

        var embeddings = await ((EmbeddingRun)governed.Execution!).GenerateAsync();
        await governed.CompleteAsync();
        var tokens = (int)(embeddings.Usage?.InputTokenCount ?? 0);
        var data = embeddings.Select((e, i) => new EmbeddingItem("embedding", i, format == "base64"
            ? Convert.ToBase64String(MemoryMarshal.AsBytes(e.Vector.Span))
            : e.Vector.ToArray())).ToArray();
        await TypedResults.Json(new EmbeddingList("list", data, governed.Route!.Model, new EmbeddingUsage(tokens, tokens)), OpenAIJson.Options).ExecuteAsync(context);
    }
}
