// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using LLama;
using LLama.Common;
using LLama.Sampling;
using Sovereign.Inference.Gguf;
using Xunit.Abstractions;

namespace Sovereign.Inference.Tests.Gguf;

/// <summary>Synthetic models must load and run in llama.cpp (through LLamaSharp), not just parse in our reader.</summary>
public sealed class SyntheticModelLlamaTests(ITestOutputHelper output) : IDisposable
{
    private const string Text = "Hello, wörld ๑";

    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.Q8_0)]
    public async Task LoadFromFile_SynthesizedModel_TokenizesRoundTripsAndGenerates(GgmlType type)
    {
        var path = _temp.File($"synthetic-{type}.gguf");
        var options = new SyntheticModelOptions { Layers = 2, EmbeddingLength = 64, HeadCount = 4, KvHeadCount = 2, VocabularySize = 512, TensorType = type };
        SyntheticModelBuilder.Write(options, path);
        var parameters = new ModelParams(path) { GpuLayerCount = 0, ContextSize = 256, Threads = 1, BatchThreads = 1 };

        using var weights = LLamaWeights.LoadFromFile(parameters);
        using var context = weights.CreateContext(parameters);

        Assert.Equal(512, weights.Vocab.Count);
        Assert.Equal(GgufReader.Open(path).ParameterCount, (long)weights.ParameterCount);

        var tokens = context.Tokenize(Text, addBos: false, special: false);
        Assert.DoesNotContain(tokens, t => (int)t == 0);
        Assert.Contains(tokens, t => (int)t is >= 5 and <= 260);

        var decoder = new StreamingTokenDecoder(context);
        decoder.AddRange(tokens);
        var decoded = decoder.Read();

        // SentencePiece prepends a word boundary to the text, which decodes as a leading space.
        Assert.Equal(Text, decoded.TrimStart(' '));

        var executor = new StatelessExecutor(weights, parameters);
        var inference = new InferenceParams { MaxTokens = 8, SamplingPipeline = new GreedySamplingPipeline() };
        var pieces = new List<string>();
        await foreach (var piece in executor.InferAsync("Once upon a time", inference))
        {
            pieces.Add(piece);
        }

        output.WriteLine($"{type}: {tokens.Length} tokens [{string.Join(", ", tokens.Select(t => (int)t))}], decoded \"{decoded}\", generated {pieces.Count} pieces: \"{string.Concat(pieces)}\"");
        Assert.InRange(pieces.Count, 0, 8);
    }

    [Fact]
    public void LoadFromFile_SynthesizedModel_ExposesBosEosEotAndChatMlTemplate()
    {
        var path = _temp.File("chat.gguf");
        SyntheticModelBuilder.Write(new SyntheticModelOptions { Layers = 1, TensorType = GgmlType.F16 }, path);
        var parameters = new ModelParams(path) { GpuLayerCount = 0, ContextSize = 256, Threads = 1, BatchThreads = 1 };

        using var weights = LLamaWeights.LoadFromFile(parameters);
        var template = new LLamaTemplate(weights, strict: false) { AddAssistant = true };
        template.Add("user", "Hi");
        var prompt = System.Text.Encoding.UTF8.GetString(template.Apply());

        Assert.Equal(1, (int?)weights.Vocab.BOS);
        Assert.Equal(2, (int?)weights.Vocab.EOS);
        Assert.Equal(4, (int?)weights.Vocab.EOT);
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", prompt);

        var special = weights.Tokenize("<|im_start|>user", add_bos: false, special: true, System.Text.Encoding.UTF8);
        Assert.Equal(3, (int)special[0]);
    }

    [Fact]
    public void Write_LargerModel_StreamsAndLoads()
    {
        // ~13M parameters in Q8_0: bigger than any test fixture, still quick to write and load.
        var path = _temp.File("larger.gguf");
        var options = new SyntheticModelOptions { Layers = 4, EmbeddingLength = 512, HeadCount = 8, VocabularySize = 8000, TensorType = GgmlType.Q8_0 };

        SyntheticModelBuilder.Write(options, path);
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(path) { GpuLayerCount = 0, ContextSize = 128, Threads = 1 });

        Assert.Equal(SyntheticModelBuilder.Estimate(options).ParameterCount, (long)weights.ParameterCount);
        Assert.Equal(512, weights.EmbeddingSize);
    }
}
