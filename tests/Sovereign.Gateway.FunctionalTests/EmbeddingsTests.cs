using System.Numerics.Tensors;
using System.Text.RegularExpressions;
using OpenAI.Embeddings;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>/v1/embeddings through the official SDK, for MiniLM and a GGUF model in embedding mode.</summary>
[Collection(ServerCollection.Name)]
public sealed class EmbeddingsTests(ServerFixture server)
{
    [Fact]
    public async Task MiniLm_SimilarSentencesScoreCloserThanUnrelated()
    {
        var client = server.OpenAI.GetEmbeddingClient("all-MiniLM-L6-v2");
        var result = (await client.GenerateEmbeddingsAsync([
            "The cat sits on the mat.",
            "A cat is sitting on a mat.",
            "Quarterly revenue grew in the semiconductor division.",
        ])).Value;

        Assert.Equal(3, result.Count);
        var vectors = result.Select(e => e.ToFloats().ToArray()).ToArray();
        Assert.All(vectors, v => Assert.Equal(384, v.Length));
        var similar = TensorPrimitives.CosineSimilarity(vectors[0], vectors[1]);
        var unrelated = TensorPrimitives.CosineSimilarity(vectors[0], vectors[2]);
        Assert.True(similar > unrelated + 0.3f, $"similar {similar}, unrelated {unrelated}");
        Assert.True(result.Usage.InputTokenCount > 0);
    }

    [Fact]
    public async Task GgufEmbeddingModel_ReturnsModelWidthVectorsAndTokenUsage()
    {
        var client = server.OpenAI.GetEmbeddingClient(ServerFixture.StoriesEmbedding);
        var result = (await client.GenerateEmbeddingsAsync(["Once upon a time", "The dog ran"])).Value;

        Assert.Equal(2, result.Count);
        Assert.All(result, e => Assert.Equal(64, e.ToFloats().Length));
        Assert.Equal(ServerFixture.StoriesEmbedding, result.Model);
        Assert.True(result.Usage.InputTokenCount >= 4);
    }

    [Fact]
    public async Task Base64Encoding_DecodesToTheSameVector()
    {
        var (_, asFloat, _) = await server.PostJsonAsync("/v1/embeddings", """{"model":"stories-embed","input":"Once upon a time"}""");
        var (_, asBase64, _) = await server.PostJsonAsync("/v1/embeddings", """{"model":"stories-embed","input":"Once upon a time","encoding_format":"base64"}""");

        var floats = asFloat.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var bytes = Convert.FromBase64String(asBase64.GetProperty("data")[0].GetProperty("embedding").GetString()!);
        Assert.Equal(floats, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray());
    }

    /// <summary>
    /// OpenAI and vLLM take <c>input</c> as token ids (LangChain's OpenAIEmbeddings sends them by default): ids of the
    /// model's vocabulary, fed as given, each billed as one prompt token. A text's own ids give the text's vector.
    /// </summary>
    [Fact]
    public async Task TokenIdInput_GivesTheVectorOfItsText_AndBillsEveryId()
    {
        const string Text = "Once upon a time";
        var (_, tokenized, _) = await server.PostJsonAsync("/tokenize", $$"""{"model":"stories","content":"{{Text}}","add_special":true}""");
        var ids = tokenized.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray();
        Assert.True(ids.Length >= 3);

        var (_, fromText, _) = await server.PostJsonAsync("/v1/embeddings", $$"""{"model":"stories-embed","input":"{{Text}}"}""");
        var (status, fromIds, _) = await server.PostJsonAsync("/v1/embeddings", $$"""{"model":"stories-embed","input":[{{string.Join(',', ids)}}]}""");

        Assert.Equal(200, status);
        AssertSameVector(fromText.GetProperty("data")[0], fromIds.GetProperty("data")[0]);
        Assert.Equal(ids.Length, fromIds.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(ids.Length, fromIds.GetProperty("usage").GetProperty("total_tokens").GetInt32());

        // An array of arrays: one vector per input, in order, every id billed.
        var (nestedStatus, nested, _) = await server.PostJsonAsync("/v1/embeddings", $$"""{"model":"stories-embed","input":[[{{string.Join(',', ids)}}],[1,2]]}""");
        Assert.Equal(200, nestedStatus);
        Assert.Equal(2, nested.GetProperty("data").GetArrayLength());
        AssertSameVector(fromText.GetProperty("data")[0], nested.GetProperty("data")[0]);
        Assert.Equal(1, nested.GetProperty("data")[1].GetProperty("index").GetInt32());
        Assert.Equal(ids.Length + 2, nested.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    /// <summary>MiniLM takes the ids as its input as given: [CLS] the cat [SEP] is the text "the cat".</summary>
    [Fact]
    public async Task TokenIdInput_MiniLm_GivesTheVectorOfItsText()
    {
        var (_, fromText, _) = await server.PostJsonAsync("/v1/embeddings", """{"model":"all-MiniLM-L6-v2","input":"the cat"}""");
        var (status, fromIds, _) = await server.PostJsonAsync("/v1/embeddings", """{"model":"all-MiniLM-L6-v2","input":[[101,1996,4937,102],[101,30521,102]]}""");

        Assert.Equal(200, status);
        AssertSameVector(fromText.GetProperty("data")[0], fromIds.GetProperty("data")[0]);
        Assert.Equal(7, fromIds.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Theory]
    [InlineData("stories-embed", "[1, 2, 512]", "input[2]", "invalid_value")]
    [InlineData("stories-embed", "[[1], [5, 99999]]", "input[1][1]", "invalid_value")]
    [InlineData("stories-embed", "[1, -1]", "input[1]", "invalid_value")]
    [InlineData("stories-embed", "[1, 2.5]", "input[1]", "invalid_value")]
    [InlineData("stories-embed", "[1, 1e400]", "input[1]", "invalid_value")]
    [InlineData("stories-embed", "[1, \"a\"]", "input[1]", "invalid_type")]
    [InlineData("stories-embed", "[[1], \"a\"]", "input[1]", "invalid_type")]
    [InlineData("stories-embed", "[[1], []]", "input[1]", "invalid_value")]
    [InlineData("stories-embed", "[[]]", "input[0]", "invalid_value")]
    [InlineData("stories-embed", "[]", "input", "invalid_value")]
    [InlineData("all-MiniLM-L6-v2", "[101, 30522, 102]", "input[1]", "invalid_value")]
    public async Task TokenIdInput_Bad_Is400NamingTheId(string model, string input, string param, string code)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/embeddings", $$"""{"model":"{{model}}","input":{{input}}}""");

        Assert.Equal(400, status);
        Assert.Equal(param, body.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal(code, body.GetProperty("error").GetProperty("code").GetString());
    }

    /// <summary>Text then ids: the refusal said "token-id inputs are not supported", which this endpoint takes.</summary>
    [Fact]
    public async Task TextThenTokenIds_Is400SayingEveryItemHasTheSameType()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/embeddings", """{"model":"all-MiniLM-L6-v2","input":["a cat",[101,102]]}""");

        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal("input[1]", error.GetProperty("param").GetString());
        Assert.Equal("invalid_type", error.GetProperty("code").GetString());
        Assert.Equal("input[1] must be a string, as input[0] is: every item of input has the same type.", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task TokenIdInput_LongerThanTheModelTakes_Is400()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/embeddings",
            $$"""{"model":"all-MiniLM-L6-v2","input":[[101],[{{string.Join(',', Enumerable.Repeat(1996, 513))}}]]}""");

        Assert.Equal(400, status);
        Assert.Equal("input[1]", body.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("context_length_exceeded", body.GetProperty("error").GetProperty("code").GetString());
        Assert.StartsWith("This model's maximum context length is 512 tokens. However, input[1] has 513 tokens", body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// A text too long for the model is named as the client sent it, as token ids and every other refusal of an input
    /// are: input[1] in an array (the param said "input" while the message said input[1]), input for one string (whose
    /// message said input[0], an element of an array never sent).
    /// </summary>
    [Theory]
    [InlineData("all-MiniLM-L6-v2", true, "input[1]")]
    [InlineData("all-MiniLM-L6-v2", false, "input")]
    [InlineData(ServerFixture.StoriesEmbedding, true, "input[1]")]
    [InlineData(ServerFixture.StoriesEmbedding, false, "input")]
    public async Task TextInput_LongerThanTheModelTakes_Is400NamingItAsSent(string model, bool asArray, string param)
    {
        var text = string.Join(' ', Enumerable.Repeat("the dog ran", 700));
        var input = asArray ? $$"""["a cat","{{text}}"]""" : $"\"{text}\"";
        var (status, body, _) = await server.PostJsonAsync("/v1/embeddings", $$"""{"model":"{{model}}","input":{{input}}}""");

        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
        // OpenAI's words, by which ported applications tell a context overflow (see ChatCompletionsTests).
        Assert.Matches($"^This model's maximum context length is [0-9]+ tokens\\. However, {Regex.Escape(param)} has (more than )?[0-9]+ tokens", error.GetProperty("message").GetString());
    }

    private static void AssertSameVector(System.Text.Json.JsonElement expected, System.Text.Json.JsonElement actual)
    {
        var a = expected.GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var b = actual.GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        Assert.Equal(a.Length, b.Length);
        Assert.All(a.Zip(b), pair => Assert.Equal(pair.First, pair.Second, 5));
    }
}
