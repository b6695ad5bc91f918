using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// The body relayed to an engine, written from the client's bytes with the gateway's edits, is byte for byte what the
/// JsonNode tree gave with the same edits; a body the tree treats apart is left to it.
/// </summary>
public sealed class RelayRequestBodyTests
{
    private const string Tenant = "relay-body-tenant";
    private const string Upstream = "upstream-model";

    public static TheoryData<string> Bodies =>
    [
        """{"model":"mock-model","messages":[{"role":"user","content":"Hello there"}],"max_tokens":1}""",
        """{"model":"m","messages":[{"role":"user","content":"caf\u00e9 <b>&amp; \"q\" \\ \n ไทย 😀"}],"stream":true,"stream_options":{"include_usage":true},"top_p":0,"temperature":0.7,"cache_salt":"mine","n":2}""",
        """{"messages":[{"role":"user","content":"x","na\u006de":"n"}],"stream":true,"top_p":0.0,"max_completion_tokens":5,"logit_bias":{"50256":-100},"x":1.50e+3}""",
        """{"model":"m","prompt":["a","b"],"stream":false,"stream_options":null,"top_p":1e999,"cache_prompt":true,"seed":-0}""",
        """{"model":"m","prompt":"p","top_p":"0","stream":true,"stream_options":{"include_usage":false,"other":[1,{"a":null}]},"max_tokens":null}""",
        """  {"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}],"top_p":-0e0}  """,
    ];

    /// <summary>The relay's edits as the tree made them (ExternalEngineExecutor.MeasureAsync, UpstreamProxy.OpenAtAsync, before this class).</summary>
    private static (byte[] Bytes, bool Stream, bool WantsUsage) TreePath(string raw, string? maxName, string cacheMode, string? salt, bool usageOnEveryEvent)
    {
        var body = (JsonObject)JsonNode.Parse(raw)!;
        if (maxName is not null)
        {
            body[maxName] = 77;
        }

        if (body["top_p"] is JsonValue topP && topP.GetValueKind() == JsonValueKind.Number
            && double.Parse(topP.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture) == 0)
        {
            body.Remove("top_p");
            body["temperature"] = 0;
        }

        EnginePromptCache.Apply(body, cacheMode, new Caller(Tenant, null, null, "default"), salt);
        var stream = body["stream"]?.GetValueKind() == JsonValueKind.True;
        var wantsUsage = body["stream_options"]?["include_usage"]?.GetValueKind() == JsonValueKind.True;
        body["model"] = Upstream;
        if (stream)
        {
            body["stream_options"] = usageOnEveryEvent
                ? new JsonObject { ["include_usage"] = true, ["continuous_usage_stats"] = true }
                : new JsonObject { ["include_usage"] = true };
        }

        return (JsonSerializer.SerializeToUtf8Bytes(body), stream, wantsUsage);
    }

    [Theory]
    [MemberData(nameof(Bodies))]
    public void EveryEdit_WritesWhatTheTreeWrote(string raw)
    {
        foreach (var maxName in new[] { null, "max_tokens", "max_completion_tokens" })
        {
            foreach (var mode in new[] { EnginePromptCaches.Shared, EnginePromptCaches.Salt, EnginePromptCaches.Off })
            {
                foreach (var salt in new[] { null, "client-salt" })
                {
                    foreach (var usageOnEveryEvent in new[] { false, true })
                    {
                        var (expected, stream, wantsUsage) = TreePath(raw, maxName, mode, salt, usageOnEveryEvent);
                        var relayed = RelayRequestBody.TryRead(Encoding.UTF8.GetBytes(raw));
                        Assert.NotNull(relayed);
                        if (maxName is not null)
                        {
                            relayed.SetMaxTokens(maxName, 77);
                        }

                        if (relayed.TopPIsZero)
                        {
                            relayed.MakeGreedy();
                        }

                        relayed.SetPromptCache(mode, Tenant, salt);

                        Assert.Equal(Encoding.UTF8.GetString(expected), Encoding.UTF8.GetString(relayed.Write(Upstream, usageOnEveryEvent)));
                        Assert.Equal(stream, relayed.Stream);
                        Assert.Equal(wantsUsage, relayed.ClientWantsUsage);
                    }
                }
            }
        }
    }

    [Theory]
    [InlineData("""{"model":"m","model":"n"}""")] // repeated: the tree refuses it when it reads the object
    [InlineData("""{"mod\u0065l":"m"}""")]
    [InlineData("""{"model":"m","stream":true,"stream_options":"yes"}""")]
    [InlineData("""{"model":"m","stream_options":{"include_usage":true,"include_usage":false}}""")]
    [InlineData("""[{"model":"m"}]""")]
    [InlineData("""{"model":"m"} x""")]
    [InlineData("")]
    public void ABodyTheTreeTreatsApart_IsLeftToIt(string raw)
    {
        Assert.Null(RelayRequestBody.TryRead(Encoding.UTF8.GetBytes(raw)));
    }
}
