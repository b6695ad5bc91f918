using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// The fields a /v1 body may name: at the top level the request type's properties (OpenAI's fields, honoured, refused
/// by name or accepted as ignorable, and the engine extensions this server honours), inside its objects OpenAI's
/// (<see cref="NestedFields"/>), and anywhere the operator's <see cref="SovereignOptions.AcceptedRequestFields"/>.
/// Any other is OpenAI's 400 <c>unknown_parameter</c> naming its path: a misspelt <c>temperatur</c>, <c>max_token</c>
/// or <c>messages[0].contnet</c> was served as if it were absent, and changed nothing.
/// </summary>
internal static class RequestFields
{
    /// <summary>The entry of <see cref="SovereignOptions.AcceptedRequestFields"/> that accepts any field.</summary>
    public const string AnyField = "*";

    /// <summary>
    /// Sampling and templating extensions of vLLM and llama-server that this process's engine does not honour: named
    /// as such (400 <c>unsupported_parameter</c>) rather than as unknown, with what to do instead.
    /// </summary>
    private static readonly FrozenDictionary<string, string> EngineExtensions = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["repetition_penalty"] = "use frequency_penalty or presence_penalty",
        ["repeat_penalty"] = "use frequency_penalty or presence_penalty",
        ["repeat_last_n"] = "use frequency_penalty or presence_penalty",
        ["length_penalty"] = "it applies to beam search, which this server does not run",
        ["min_tokens"] = "no minimum length can be set here",
        ["ignore_eos"] = "generation ends at the model's end of generation",
        ["typical_p"] = "use top_p, top_k or min_p",
        ["mirostat"] = "use top_p, top_k or min_p",
        ["mirostat_tau"] = "use top_p, top_k or min_p",
        ["mirostat_eta"] = "use top_p, top_k or min_p",
        ["tfs_z"] = "use top_p, top_k or min_p",
        ["dynatemp_range"] = "use temperature",
        ["xtc_probability"] = "use top_p, top_k or min_p",
        ["dry_multiplier"] = "use frequency_penalty or presence_penalty",
        ["n_predict"] = "use max_tokens",
        ["n_probs"] = "use logprobs",
        ["grammar"] = "use response_format with a JSON schema",
        ["json_schema"] = "use response_format with a JSON schema",
        ["guided_json"] = "use response_format with a JSON schema",
        ["guided_regex"] = "use response_format with a JSON schema",
        ["guided_choice"] = "use response_format with a JSON schema (an enum)",
        ["guided_grammar"] = "use response_format with a JSON schema",
        ["structured_outputs"] = "use response_format with a JSON schema",
        ["chat_template_kwargs"] = "the model's chat template is rendered as written",
        ["chat_template"] = "the model's chat template is rendered as written",
        ["add_generation_prompt"] = "the model's chat template is rendered as written",
        ["continue_final_message"] = "the model's chat template is rendered as written",
        ["skip_special_tokens"] = "special tokens are never part of the text",
        ["stop_token_ids"] = "use stop",
        ["include_stop_str_in_output"] = "the stop string is never part of the text, as on OpenAI",
        ["use_beam_search"] = "this server samples, it does not run beam search",
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>Named, so that the contract (the serializer's own view of each request type) can be read.</summary>
    private static readonly JsonSerializerOptions ContractOptions = new(OpenAIJson.Options) { TypeInfoResolver = new DefaultJsonTypeInfoResolver() };

    private static readonly ConcurrentDictionary<Type, FieldShape> Roots = new();

    /// <summary>
    /// What <see cref="RequestReader.ReadAsync{T}"/> checks a <typeparamref name="T"/> body's field names against while
    /// it reads it (no pass of its own); null where nothing is checked: work a gateway relays to this node was checked
    /// there (against that gateway's settings), and <c>*</c> accepts any field.
    /// </summary>
    public static KnownFields? For<T>(Caller caller, SovereignOptions options)
    {
        var accepted = options.AcceptedRequestFields;
        if (caller.TenantId == ClusterRelay.RelayTenant || accepted.Contains(AnyField))
        {
            return null;
        }

        return new KnownFields(Roots.GetOrAdd(typeof(T), RootOf), accepted);
    }

    /// <summary>The request type's top-level fields (from its contract, so a field added to the type is known), their nested shapes from <see cref="NestedFields"/>.</summary>
    private static FieldShape RootOf(Type type)
    {
        var nested = NestedFields.Of(type);
        return FieldShape.Object([.. ContractOptions.GetTypeInfo(type).Properties.Select(p => (p.Name, nested.GetValueOrDefault(p.Name)))]);
    }

    /// <summary>The 400 for a field the body may not have at <paramref name="param"/> (<c>messages[0].contnet</c>).</summary>
    internal static OpenAIException Unknown(string param, bool topLevel)
    {
        if (topLevel)
        {
            return Refusal(param);
        }

        var shown = RequestReader.Shorten(param);
        return OpenAIException.BadRequest($"Unknown parameter: '{shown}'.", shown, "unknown_parameter");
    }

    /// <summary>
    /// Whether the operator accepts the field at <paramref name="path"/>, written without indices
    /// (<c>messages.content.cache_control</c>): listed as is, or <c>parent.*</c> for any field of that object.
    /// </summary>
    internal static bool IsAccepted(List<string> accepted, string path)
    {
        if (accepted.Count == 0)
        {
            return false;
        }

        if (accepted.Contains(path))
        {
            return true;
        }

        var dot = path.LastIndexOf('.');
        return dot > 0 && accepted.Contains(string.Concat(path.AsSpan(0, dot), ".*"));
    }

    private static OpenAIException Refusal(string name)
    {
        var param = RequestReader.Shorten(name);
        return EngineExtensions.TryGetValue(name, out var instead)
            ? OpenAIException.BadRequest(
                $"'{param}' is an engine extension (vLLM, llama-server) that this server does not honour: {instead}.", param, "unsupported_parameter")
            : OpenAIException.BadRequest($"Unknown parameter: '{param}'.", param, "unknown_parameter");
    }
}
