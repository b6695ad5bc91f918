using System.Numerics.Tensors;
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
}
