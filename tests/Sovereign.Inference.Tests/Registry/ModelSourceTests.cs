// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using Sovereign.Inference.Registry;

namespace Sovereign.Inference.Tests.Registry;

public sealed class ModelSourceTests
{
    [Fact]
    public void Parse_HuggingFaceSource_MapsToTheResolveUrlOnTheEndpoint()
    {
        var source = ModelSource.Parse("hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf");

        Assert.Equal(ModelSourceKind.HuggingFace, source.Kind);
        Assert.Equal("https://huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/main/Llama-3.2-1B-Instruct-Q4_K_M.gguf", source.Url.AbsoluteUri);
    }

    [Fact]
    public void Parse_HuggingFaceSourceWithSubfolderAndMirror_EscapesSegmentsUnderTheMirror()
    {
        var source = ModelSource.Parse("hf:org/repo/sub dir/model.gguf", new Uri("https://mirror.example/hf/"));

        Assert.Equal("https://mirror.example/hf/org/repo/resolve/main/sub%20dir/model.gguf", source.Url.AbsoluteUri);
    }

    [Theory]
    [InlineData("https://example.com/m.gguf")]
    [InlineData("http://127.0.0.1:8080/m.gguf")]
    [InlineData("http://localhost/m.gguf")]
    [InlineData("http://[::1]:9000/m.gguf")]
    public void Parse_AllowedUrl_Accepted(string url)
    {
        var source = ModelSource.Parse(url);

        Assert.Equal(ModelSourceKind.Url, source.Kind);
        Assert.Equal(url, source.Original);
    }

    [Fact]
    public void Parse_UrlWithFragment_FragmentDropped()
    {
        Assert.Equal("https://example.com/m.gguf", ModelSource.Parse("https://example.com/m.gguf#x").Url.AbsoluteUri);
    }

    [Theory]
    [InlineData("ftp://example.com/m.gguf")]
    [InlineData("http://10.0.0.5/m.gguf")]
    [InlineData("relative/m.gguf")]
    [InlineData("hf:org/repo")]
    [InlineData("hf:org/re po/m.gguf")]
    [InlineData("hf:org//m.gguf")]
    public void Parse_RefusedSource_InvalidArgument(string value)
    {
        var error = Assert.Throws<ModelRegistryException>(() => ModelSource.Parse(value));

        Assert.Equal(ModelRegistryError.InvalidArgument, error.Error);
    }

    [Fact]
    public void Parse_PlainHttpHuggingFaceEndpointOffLoopback_Refused()
    {
        var error = Assert.Throws<ModelRegistryException>(() => ModelSource.Parse("hf:org/repo/m.gguf", new Uri("http://mirror.example/")));

        Assert.Contains("plain http", error.Message, StringComparison.Ordinal);
    }
}
