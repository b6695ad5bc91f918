// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using Sovereign.Inference.Registry;

namespace Sovereign.Inference.Tests.Registry;

public sealed class ModelDigestTests
{
    private const string Hex = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d";

    [Theory]
    [InlineData(Hex)]
    [InlineData("sha256:" + Hex)]
    [InlineData("SHA256:270CBA1BD5109F42D03350F60406024560464DB173C0E387D91F0426D3BD256D")]
    [InlineData("  sha256:" + Hex + "\n")]
    public void Normalize_AcceptedSpellings_CanonicalForm(string value)
    {
        Assert.Equal("sha256:" + Hex, ModelDigest.Normalize(value));
    }

    [Theory]
    [InlineData("md5:d41d8cd98f00b204e9800998ecf8427e")]
    [InlineData("270cba")]
    [InlineData("sha256:" + "g70cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d")]
    public void Normalize_NotASha256_InvalidArgumentNamingTheValue(string value)
    {
        var error = Assert.Throws<ModelRegistryException>(() => ModelDigest.Normalize(value));

        Assert.Equal(ModelRegistryError.InvalidArgument, error.Error);
        Assert.Contains(value, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ComputeAsync_RealModel_MatchesThePublishedDigest()
    {
        Assert.Equal("sha256:" + Hex, await ModelDigest.ComputeAsync(TestModels.Stories260K));
    }
}
