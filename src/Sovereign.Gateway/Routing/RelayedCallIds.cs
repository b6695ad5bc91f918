using System.Text.Json;
using System.Text.Json.Nodes;
using Sovereign.Gateway.OpenAI;
using Sovereign.Inference.Tools;

namespace Sovereign.Gateway.Routing;

/// <summary>
/// Keeps the tool-call ids of one relayed chat answer distinct per choice, whole or streamed. Some engines give two
/// calls of one answer the same id (Mistral's short ids, proxies of other models); passed on, the client's next turn
/// (both calls and a result for each) is refused, by this gateway and by OpenAI ("Duplicate value for
/// 'tool_call_id'"), and the conversation cannot go on. An engine's id is kept unless it is empty or already used by
/// another call of the choice; a streamed call keeps the id its first delta got, whatever later deltas repeat.
/// </summary>
internal sealed class RelayedCallIds
{
    private readonly Dictionary<(int Choice, int Call), string> _given = [];
    private readonly Dictionary<int, HashSet<string>> _used = [];

    /// <summary>Rewrites, in place, the ids of the calls in an answer's messages or a chunk's deltas.</summary>
    public void Apply(JsonObject answerOrChunk)
    {
        if (answerOrChunk["choices"] is not JsonArray choices)
        {
            return;
        }

        for (var c = 0; c < choices.Count; c++)
        {
            if (choices[c] is not JsonObject choice || (choice["message"] ?? choice["delta"])?["tool_calls"] is not JsonArray calls)
            {
                continue;
            }

            var choiceIndex = IntOf(choice["index"]) ?? c;
            for (var i = 0; i < calls.Count; i++)
            {
                if (calls[i] is not JsonObject call || call["id"] is not JsonValue idValue || idValue.GetValueKind() != JsonValueKind.String)
                {
                    continue;
                }

                var key = (choiceIndex, IntOf(call["index"]) ?? i);
                if (!_given.TryGetValue(key, out var id))
                {
                    var used = _used.TryGetValue(choiceIndex, out var set) ? set : _used[choiceIndex] = new(StringComparer.Ordinal);
                    var engineId = idValue.GetValue<string>();
                    id = engineId.Length == 0 || used.Contains(engineId) ? ChatTools.NewCallId(ToolCallFormat.Hermes) : engineId;
                    used.Add(id);
                    _given[key] = id;
                }

                call["id"] = id;
            }
        }
    }

    private static int? IntOf(JsonNode? node) => node is JsonValue value && value.TryGetValue<int>(out var number) ? number : null;
}
