using Sovereign.Residency.ControlPlane;

namespace Sovereign.Residency.Tests.ControlPlane;

public sealed class ApiKeySecretsTests
{
    [Theory]
    [InlineData("")]
    [InlineData("sk-sov-")]
    [InlineData("sk-sov-AbCdEf0123456789_-AbCdEf0123456789_-AbCdEf01234")]
    [InlineData("sk-sov-ключ-鍵-🔑")]
    [InlineData("sk-sov-\ud800-lone")]
    public void Hash_IntoSpan_IsTheStringHash(string secret)
    {
        Span<char> hex = stackalloc char[ApiKeySecrets.HashLength];
        ApiKeySecrets.Hash(secret, hex);

        Assert.Equal(ApiKeySecrets.Hash(secret), new string(hex));
    }

    [Fact]
    public void Hash_IntoSpan_OfAKeyLongerThanTheStackBuffer_IsTheStringHash()
    {
        // A header may carry kilobytes: those bytes are rented, not on the stack.
        var hex = new char[ApiKeySecrets.HashLength];
        foreach (var length in new[] { 85, 86, 87, 255, 256, 257, 10_000 })
        {
            var secret = ApiKeySecrets.Prefix + new string('é', length);
            ApiKeySecrets.Hash(secret, hex);
            Assert.Equal(ApiKeySecrets.Hash(secret), new string(hex));
        }
    }

    [Fact]
    public void Hash_IntoSpan_TooShort_Throws()
    {
        var hex = new char[ApiKeySecrets.HashLength - 1];

        Assert.Throws<ArgumentOutOfRangeException>(() => ApiKeySecrets.Hash("sk-sov-x", hex));
    }
}
