// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using Sovereign.Inference.Gguf;

namespace Sovereign.Inference.Tests.Gguf;

public sealed class SyntheticModelOptionsTests
{
    public static TheoryData<SyntheticModelOptions, string> InvalidOptions => new()
    {
        { new SyntheticModelOptions { Layers = 0 }, nameof(SyntheticModelOptions.Layers) },
        { new SyntheticModelOptions { Layers = 513 }, nameof(SyntheticModelOptions.Layers) },
        { new SyntheticModelOptions { EmbeddingLength = 0 }, nameof(SyntheticModelOptions.EmbeddingLength) },
        { new SyntheticModelOptions { HeadCount = 0 }, nameof(SyntheticModelOptions.HeadCount) },
        { new SyntheticModelOptions { EmbeddingLength = 64, HeadCount = 5 }, nameof(SyntheticModelOptions.HeadCount) },
        { new SyntheticModelOptions { EmbeddingLength = 64, HeadCount = 64 }, nameof(SyntheticModelOptions.HeadCount) },
        { new SyntheticModelOptions { HeadCount = 4, KvHeadCount = 3 }, nameof(SyntheticModelOptions.KvHeadCount) },
        { new SyntheticModelOptions { HeadCount = 4, KvHeadCount = 0 }, nameof(SyntheticModelOptions.KvHeadCount) },
        { new SyntheticModelOptions { FeedForwardLength = 0 }, nameof(SyntheticModelOptions.FeedForwardLength) },
        { new SyntheticModelOptions { VocabularySize = 260 }, nameof(SyntheticModelOptions.VocabularySize) },
        { new SyntheticModelOptions { ContextLength = 0 }, nameof(SyntheticModelOptions.ContextLength) },
        { new SyntheticModelOptions { TensorType = GgmlType.Q4_K }, nameof(SyntheticModelOptions.TensorType) },
        { new SyntheticModelOptions { TensorType = GgmlType.Q8_0, EmbeddingLength = 48, HeadCount = 4 }, nameof(SyntheticModelOptions.EmbeddingLength) },
        { new SyntheticModelOptions { TensorType = GgmlType.Q8_0, FeedForwardLength = 100 }, nameof(SyntheticModelOptions.FeedForwardLength) },
        { new SyntheticModelOptions { Name = " " }, nameof(SyntheticModelOptions.Name) },
        { new SyntheticModelOptions { ChatTemplate = string.Empty }, nameof(SyntheticModelOptions.ChatTemplate) },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void Validate_InvalidOption_ThrowsArgumentExceptionNamingIt(SyntheticModelOptions options, string option)
    {
        var error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Equal(option, error.ParamName);
        Assert.Contains(option, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_InvalidOption_ThrowsBeforeCreatingFile()
    {
        using var temp = new TempDirectory();
        var path = temp.File("bad.gguf");

        var error = Assert.Throws<ArgumentException>(() => SyntheticModelBuilder.Write(new SyntheticModelOptions { VocabularySize = 10 }, path));

        Assert.Equal(nameof(SyntheticModelOptions.VocabularySize), error.ParamName);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Defaults_AreValidAndDeriveDependentOptions()
    {
        var options = new SyntheticModelOptions { EmbeddingLength = 96, HeadCount = 6 };

        options.Validate();

        Assert.Equal(256, options.FeedForwardLength);
        Assert.Equal(6, options.KvHeadCount);
        Assert.Equal(192, new SyntheticModelOptions().FeedForwardLength);
        Assert.Contains("<|im_start|>", new SyntheticModelOptions().ChatTemplate, StringComparison.Ordinal);
        Assert.Equal(100, (new SyntheticModelOptions() with { FeedForwardLength = 100 }).FeedForwardLength);
    }
}
