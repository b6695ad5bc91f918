using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.Routing;
using Sovereign.Languages;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// <c>POST /v1/language/detect</c>: the detector's decision for one text or a batch, with the same detector and
/// settings that route requests and record their language, so tenants can route their own pipelines and auditors can
/// check decisions. Any caller allowed on /v1 may use it, at a gateway its policy's jurisdictions allow (the texts are
/// content); texts are neither stored nor logged. Not metered, but each
/// request counts against the tenant's requests-per-minute limit (a full batch costs seconds of CPU).
/// </summary>
internal static class LanguageDetectEndpoint
{
    public static async Task<IResult> HandleAsync(HttpContext context, InferenceRouter router, LanguageRouting languages, RequestMetering metering, IOptions<SovereignOptions> options)
    {
        var caller = await router.AuthenticateAsync(context);
        router.RequireContentAllowedHere(caller);
        var request = await RequestReader.ReadAsync<LanguageDetectRequest>(context, RequestFields.For<LanguageDetectRequest>(caller, options.Value));
        var inputs = TextInputs.Read(request.Input, options.Value.Limits.MaxEmbeddingInputs, allowEmpty: true);

        // Like the other /v1 endpoints: a valid request is counted before its work, a 400 costs nothing.
        await metering.CountRequestAsync(context, caller);
        var data = new LanguageDetectItem[inputs.Count];
        for (var i = 0; i < inputs.Count; i++)
        {
            // A full batch is seconds of CPU: a client that has gone does not get the rest of it.
            context.RequestAborted.ThrowIfCancellationRequested();
            var detection = languages.Detect(inputs[i]);
            data[i] = new LanguageDetectItem(
                "language.detection",
                i,
                detection.Language,
                detection.Script,
                Math.Round(detection.Confidence, 4),
                detection.Method,
                detection.RunnerUp is { } runnerUp ? new RunnerUp(runnerUp, Math.Round(detection.RunnerUpConfidence, 4)) : null,
                detection.Group,
                detection.MemberDecided);
        }

        return TypedResults.Json(new LanguageDetectList("list", data), OpenAIJson.Options);
    }
}

/// <summary>The body of <c>POST /v1/language/detect</c>.</summary>
internal sealed record LanguageDetectRequest([property: JsonPropertyName("input")] JsonElement? Input);

/// <summary>The answer: one item per input, in order.</summary>
internal sealed record LanguageDetectList(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<LanguageDetectItem> Data);

/// <summary>One text's decision. <c>group</c> (added in round 34) names the close group of the language (<c>hbs</c>,
/// <c>msa</c>) or is null; <c>member_decided</c> is false when the detector could not decide which member of the group
/// the text is (the language is then its best guess), and for <c>und</c>.</summary>
internal sealed record LanguageDetectItem(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("language")] string Language,
    [property: JsonPropertyName("script")] string Script,
    [property: JsonPropertyName("confidence")] double Confidence,
    [property: JsonPropertyName("method")] string Method,
    [property: JsonPropertyName("runner_up")] RunnerUp? RunnerUp,
    [property: JsonPropertyName("group")] string? Group,
    [property: JsonPropertyName("member_decided")] bool MemberDecided);

/// <summary>The next most likely language (for <c>und</c>: the best candidate).</summary>
internal sealed record RunnerUp(
    [property: JsonPropertyName("language")] string Language,
    [property: JsonPropertyName("confidence")] double Confidence);
