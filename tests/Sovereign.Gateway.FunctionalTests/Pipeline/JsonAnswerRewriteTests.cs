using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A whole engine answer relayed in one pass over its bytes is byte for byte what the node path (parse, set the
/// client's model, serialize) writes, with the same usage; every answer the node path treats specially is left to it.
/// </summary>
public sealed class JsonAnswerRewriteTests
{
    private const string Model = "client-model";

    /// <summary>What the relay wrote before: the answer parsed, the client's model set, serialized.</summary>
    private static byte[] NodePath(string answer)
    {
        var json = (JsonObject)JsonNode.Parse(answer)!;
        json["model"] = Model;
        return JsonSerializer.SerializeToUtf8Bytes(json, OpenAIJson.Options);
    }

    [Theory]
    [InlineData("""{"id":"c1","object":"chat.completion","created":1,"model":"upstream","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}""", 5, 1, 0)]
    [InlineData("""{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}""", 5, 1, 0)] // no model: added last
    [InlineData("""  {"model":"m","usage":{"completion_tokens":7,"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":4}}}  """, 9, 7, 4)]
    [InlineData("""{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":0,"prompt_tokens_details":{"cached_tokens":40}}}""", 3, 0, 3)] // clamped
    [InlineData("""{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":"4"}}}""", 3, 2, 0)]
    [InlineData("""{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_tokens_details":null}}""", 3, 2, 0)]
    [InlineData("""{"model":{"nested":[1,2]},"x":1.50e+3,"y":-0.0,"z":[true,false,null,{}],"usage":{"prompt_tokens":1,"completion_tokens":1}}""", 1, 1, 0)]
    [InlineData("""{"model":"m","choices":[{"message":{"content":"caf\u00e9 \"q\" \\ \n \u0001 <b>&amp; \ud83d\ude00 ไทย","a\u0062":"x"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}""", 1, 1, 0)]
    [InlineData("""{"model":"m","logprobs":{"content":[{"token":"a","logprob":-0.1234567890123456789,"bytes":[97]}]},"usage":{"prompt_tokens":1,"completion_tokens":1,"extra":{"k":"k","k":"k"}}}""", 1, 1, 0)]
    public void TheCommonAnswer_IsWrittenAsTheNodePathWritesIt_WithItsUsage(string answer, int prompt, int completion, int cached)
    {
        Assert.True(JsonAnswerRewrite.TryRewrite(Encoding.UTF8.GetBytes(answer), Model, out var relayed, out var usage));

        Assert.Equal(Encoding.UTF8.GetString(NodePath(answer)), Encoding.UTF8.GetString(relayed));
        Assert.Equal(new UpstreamUsage(prompt, completion, cached), usage);
    }

    [Theory]
    [InlineData("""[{"usage":{"prompt_tokens":1,"completion_tokens":1}}]""")] // llama-server's several prompts
    [InlineData("""{"model":"m"}""")] // no usage
    [InlineData("""{"model":"m","usage":null}""")]
    [InlineData("""{"model":"m","usage":[1,2]}""")]
    [InlineData("""{"model":"m","usage":{"prompt_tokens":"5","completion_tokens":3}}""")]
    [InlineData("""{"model":"m","usage":{"prompt_tokens":5.5,"completion_tokens":3}}""")]
    [InlineData("""{"model":"m","usage":{"prompt_tokens":5,"completion_tokens":-3}}""")]
    [InlineData("""{"model":"m","usage":{"prompt_tokens":5,"completion_tokens":99999999999}}""")]
    [InlineData("""{"model":"m","usage":{"prompt_tokens":5}}""")]
    [InlineData("""{"model":"m","usage":{"prompt_tokens":5,"completion_tokens":3,"prompt_tokens":5}}""")] // repeated in usage
    [InlineData("""{"model":"m","usage":{"prompt_tokens":5,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":2}}}""")]
    [InlineData("""{"model":"m","model":"n","usage":{"prompt_tokens":5,"completion_tokens":3}}""")] // repeated at the top
    [InlineData("""{"mod\u0065l":"m","usage":{"prompt_tokens":5,"completion_tokens":3}}""")] // a name with escapes
    [InlineData("""{"model":"m","usage":{"prompt_tokens":5,"completion_tokens":3}} x""")] // trailing text
    [InlineData("""{"model":"m","usage":{"prompt_tokens":5,"completion_tokens":3},}""")] // trailing comma
    [InlineData("""{"model":"m" """)]
    [InlineData("")]
    [InlineData("null")]
    public void AnAnswerTheNodePathTreatsApart_IsLeftToIt(string answer)
    {
        Assert.False(JsonAnswerRewrite.TryRewrite(Encoding.UTF8.GetBytes(answer), Model, out _, out _));
    }

    [Fact]
    public void InvalidUtf8_IsWrittenAsTheNodePathWritesIt_AndAnswersDeeperThanItWrites_AreLeftToIt()
    {
        var invalid = Encoding.UTF8.GetBytes("""{"model":"m","text":"ab","usage":{"prompt_tokens":1,"completion_tokens":1}}""");
        invalid[Array.IndexOf(invalid, (byte)'b')] = 0xFF;
        byte[]? nodePath;
        try
        {
            var json = (JsonObject)JsonNode.Parse(invalid)!;
            json["model"] = Model;
            nodePath = JsonSerializer.SerializeToUtf8Bytes(json, OpenAIJson.Options);
        }
        catch (Exception ex) when (ex is ArgumentException or JsonException or InvalidOperationException)
        {
            nodePath = null;
        }

        Assert.Equal(nodePath is not null, JsonAnswerRewrite.TryRewrite(invalid, Model, out var written, out _));
        Assert.Equal(nodePath ?? [], written);

        var deep = "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1},\"d\":" + new string('[', 40) + new string(']', 40) + "}";
        Assert.False(JsonAnswerRewrite.TryRewrite(Encoding.UTF8.GetBytes(deep), Model, out _, out _));

        // The thread's buffers are whole again after a refusal: the next answer is written from its start.
        Assert.True(JsonAnswerRewrite.TryRewrite("""{"usage":{"prompt_tokens":1,"completion_tokens":2}}"""u8.ToArray(), Model, out var relayed, out _));
        Assert.Equal("""{"usage":{"prompt_tokens":1,"completion_tokens":2},"model":"client-model"}""", Encoding.UTF8.GetString(relayed));
    }

    [Fact]
    public void ALargeAnswer_IsWrittenWhole()
    {
        var content = new string('x', 200_000);
        var answer = "{\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"" + content + "\"}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}";
        Assert.True(JsonAnswerRewrite.TryRewrite(Encoding.UTF8.GetBytes(answer), Model, out var relayed, out _));
        Assert.Equal(NodePath(answer), relayed);
    }
}
