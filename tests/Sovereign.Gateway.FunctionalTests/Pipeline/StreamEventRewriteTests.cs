using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A streamed event relayed in one pass over its bytes is byte for byte what the tree path (parse, read the usage, the
/// relay's edits, <c>ServerSentEvents.WriteAsync</c>) writes, with the same usage and the same count of delivered
/// chunks; every event the tree path treats specially is left to it.
/// </summary>
public sealed class StreamEventRewriteTests
{
    private const string Model = "client-model";

    /// <summary>What the relay wrote before for one event (a client that asked for usage, or not): the bytes, or null when it was not written.</summary>
    private static (byte[]? Written, bool CarriesTokens) TreePath(string data, bool clientWantsUsage)
    {
        var chunk = (JsonObject)JsonNode.Parse(data)!;
        if (!clientWantsUsage && chunk["usage"] is JsonObject)
        {
            if (chunk["choices"] is JsonArray { Count: 0 })
            {
                return (null, false);
            }

            chunk.Remove("usage");
        }

        chunk["model"] = Model;
        var buffer = new ArrayBufferWriter<byte>();
        buffer.Write("data: "u8);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            JsonSerializer.Serialize(writer, chunk, OpenAIJson.Options);
        }

        buffer.Write("\n\n"u8);
        return (buffer.WrittenSpan.ToArray(), UpstreamProxy.CarriesTokens(chunk));
    }

    /// <summary>The tree path over raw bytes (text that is not valid UTF-8 cannot pass through a string).</summary>
    private static byte[] TreePathOf(byte[] data)
    {
        var chunk = (JsonObject)JsonNode.Parse(data)!;
        chunk["model"] = Model;
        var buffer = new ArrayBufferWriter<byte>();
        buffer.Write("data: "u8);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            JsonSerializer.Serialize(writer, chunk, OpenAIJson.Options);
        }

        buffer.Write("\n\n"u8);
        _ = UpstreamProxy.CarriesTokens(chunk);
        return buffer.WrittenSpan.ToArray();
    }

    private static byte[]? Written(StreamEventRewrite.Event read)
    {
        if (read.Written is not { } rented)
        {
            return null;
        }

        var bytes = rented.AsSpan(0, read.Length).ToArray();
        ArrayPool<byte>.Shared.Return(rented);
        return bytes;
    }

    [Theory]
    [InlineData("""{"id":"c1","object":"chat.completion.chunk","created":1,"model":"upstream","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}""", false)]
    [InlineData("""{"id":"c1","object":"chat.completion.chunk","created":1,"model":"upstream","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}]}""", true)]
    [InlineData("""{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"model":"upstream"}""", false)]
    [InlineData("""{"id":"c1","choices":[{"index":0,"text":" world","finish_reason":null}]}""", true)] // completions; no model: added last
    [InlineData("""{"id":"c1","choices":[{"index":0,"text":""},{"index":1,"delta":{"content":"x"}}]}""", true)]
    [InlineData("""{"id":"c1","choices":[null,{"index":1,"delta":null,"text":null}],"model":null}""", false)]
    [InlineData("""{"model":"m","choices":[{"delta":{"content":"caf\u00e9 \"q\" \\ \n \u0001 <b>&amp; \ud83d\ude00 ไทย"},"logprobs":{"a\u0062":"x"}}]}""", true)]
    [InlineData("""{"model":"m","choices":[{"delta":{"content":"\u0000"}}]}""", true)]
    [InlineData("""{"model":"m","choices":[{"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-0.1234567890123456789,"bytes":[97],"k":1,"k":2}]}}],"x":1.50e+3,"y":-0.0}""", true)]
    [InlineData("""  {"model":"m","choices":{"not":"an array"}}  """, false)]
    [InlineData("""{"model":"m","choices":[{"delta":{"content":7}}],"error":null}""", false)]
    public void AContentEvent_IsWrittenAsTheTreePathWritesIt(string data, bool carriesTokens)
    {
        foreach (var clientWantsUsage in new[] { true, false })
        {
            Assert.True(StreamEventRewrite.TryRewrite(Encoding.UTF8.GetBytes(data), Model, clientWantsUsage, out var read));

            var (tree, treeCarries) = TreePath(data, clientWantsUsage);
            Assert.Equal(Encoding.UTF8.GetString(tree!), Encoding.UTF8.GetString(Written(read)!));
            Assert.Equal(carriesTokens, treeCarries);
            Assert.Equal(treeCarries, read.CarriesTokens);
            Assert.Null(read.Usage);
        }
    }

    [Theory]
    [InlineData("""{"id":"c1","object":"chat.completion.chunk","created":1,"model":"upstream","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}""", 5, 3, 0)]
    [InlineData("""{"choices":[],"usage":{"completion_tokens":7,"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":40}}}""", 9, 7, 9)]
    public void TheUsageEvent_IsReadAndWrittenOnlyForAClientThatAskedForIt(string data, int prompt, int completion, int cached)
    {
        Assert.True(StreamEventRewrite.TryRewrite(Encoding.UTF8.GetBytes(data), Model, clientWantsUsage: true, out var asked));
        Assert.Equal(Encoding.UTF8.GetString(TreePath(data, clientWantsUsage: true).Written!), Encoding.UTF8.GetString(Written(asked)!));
        Assert.Equal(new UpstreamUsage(prompt, completion, cached), asked.Usage);
        Assert.False(asked.CarriesTokens);

        Assert.True(StreamEventRewrite.TryRewrite(Encoding.UTF8.GetBytes(data), Model, clientWantsUsage: false, out var notAsked));
        Assert.Null(TreePath(data, clientWantsUsage: false).Written);
        Assert.Null(notAsked.Written);
        Assert.Equal(new UpstreamUsage(prompt, completion, cached), notAsked.Usage);
    }

    [Theory]
    [InlineData("""{"model":"m","choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}""")] // usage beside choices (llama-server, usage on every event)
    [InlineData("""{"model":"m","usage":{"prompt_tokens":1,"completion_tokens":1}}""")] // usage without choices
    [InlineData("""{"model":"m","choices":[],"usage":{"prompt_tokens":"1","completion_tokens":1}}""")] // a usage the tree refuses
    [InlineData("""{"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":-1}}""")]
    [InlineData("""{"model":"m","choices":[],"usage":[1]}""")]
    [InlineData("""{"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"prompt_tokens":2}}""")]
    [InlineData("""{"error":{"message":"boom"}}""")] // the engine's error
    [InlineData("""{"model":"m","choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1"}]}}]}""")] // ids made distinct
    [InlineData("""{"model":"m","choices":[{"message":{"content":"a"}}]}""")]
    [InlineData("""{"model":"m","choices":[{"delta":"text"}]}""")] // the tree's look for tool calls throws
    [InlineData("""{"model":"m","choices":["text"]}""")]
    [InlineData("""{"model":"m","model":"n","choices":[]}""")] // repeated at the top
    [InlineData("""{"model":"m","choices":[{"index":0,"index":1,"delta":{}}]}""")] // repeated in a choice
    [InlineData("""{"model":"m","choices":[{"delta":{"content":"a","content":"b"}}]}""")] // repeated in a delta
    [InlineData("""{"mod\u0065l":"m","choices":[]}""")] // a name with escapes
    [InlineData("""{"model":"m","choices":[{"delta":{"tool\u005fcalls":[]}}]}""")]
    [InlineData("""{"model":"m","choices":[{"delta":{"content":"a","r\u006fle":"assistant"}}]}""")] // a name with escapes in a delta
    [InlineData("""{"model":"m","choices":[{"delta":{"content":"\ud800"}}]}""")] // a lone surrogate
    [InlineData("""{"model":"m","choices":[]} x""")] // trailing text
    [InlineData("""{"model":"m","choices":[],}""")] // trailing comma
    [InlineData("""{"model":"m" """)]
    [InlineData("")]
    [InlineData("null")]
    [InlineData("[]")]
    public void AnEventTheTreePathTreatsApart_IsLeftToIt(string data)
    {
        Assert.False(StreamEventRewrite.TryRewrite(Encoding.UTF8.GetBytes(data), Model, clientWantsUsage: true, out _));
        Assert.False(StreamEventRewrite.TryRewrite(Encoding.UTF8.GetBytes(data), Model, clientWantsUsage: false, out _));
    }

    [Fact]
    public void InvalidUtf8_IsLeftToTheTreePath_AndTheNextEventIsWrittenFromItsStart()
    {
        var invalid = Encoding.UTF8.GetBytes("""{"model":"m","choices":[{"delta":{"content":"ab"}}]}""");
        invalid[Array.IndexOf(invalid, (byte)'b')] = 0xFF;
        Assert.False(StreamEventRewrite.TryRewrite(invalid, Model, clientWantsUsage: true, out _));
        Assert.ThrowsAny<Exception>(() => TreePathOf(invalid)); // the tree path's reading of the text throws: its own to answer

        // Elsewhere than in a text the tree decodes, written as the tree path writes it.
        var elsewhere = Encoding.UTF8.GetBytes("""{"model":"m","choices":[{"delta":{"content":"a"},"x":"ab"}]}""");
        elsewhere[Array.LastIndexOf(elsewhere, (byte)'b')] = 0xFF;
        byte[]? tree;
        try
        {
            tree = TreePathOf(elsewhere);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or JsonException)
        {
            tree = null;
        }

        Assert.Equal(tree is not null, StreamEventRewrite.TryRewrite(elsewhere, Model, clientWantsUsage: true, out var written));
        Assert.Equal(tree, tree is null ? null : Written(written));

        var deep = "{\"choices\":[],\"d\":" + new string('[', 70) + new string(']', 70) + "}";
        Assert.False(StreamEventRewrite.TryRewrite(Encoding.UTF8.GetBytes(deep), Model, clientWantsUsage: true, out _));

        // The thread's buffers are whole again after a refusal.
        Assert.True(StreamEventRewrite.TryRewrite("""{"choices":[{"delta":{"content":"x"}}]}"""u8.ToArray(), Model, clientWantsUsage: true, out var read));
        Assert.Equal("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"model\":\"client-model\"}\n\n", Encoding.UTF8.GetString(Written(read)!));
    }

    [Fact]
    public void ALargeEvent_IsWrittenWhole()
    {
        var data = "{\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"" + new string('x', 200_000) + "\"}}]}";
        Assert.True(StreamEventRewrite.TryRewrite(Encoding.UTF8.GetBytes(data), Model, clientWantsUsage: true, out var read));
        Assert.Equal(TreePath(data, clientWantsUsage: true).Written, Written(read));
    }
}
