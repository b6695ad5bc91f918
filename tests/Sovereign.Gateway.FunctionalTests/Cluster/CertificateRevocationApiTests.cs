using System.Text;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Pipeline;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary><c>/admin/v1/cluster/revocations</c> on one server: validation, the durable list, and the audit entry.</summary>
public sealed class CertificateRevocationApiTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    [Theory]
    [InlineData("""{"serial":"AB","node_id":"node-th"}""", "node_id", "missing_required_parameter")]
    [InlineData("""{"reason":"x"}""", "serial", "missing_required_parameter")]
    [InlineData("""{"serial":"not hex"}""", "serial", "invalid_value")]
    [InlineData("""{"node_id":"Node TH"}""", "node_id", "invalid_value")]
    public async Task ABadRevocation_Is400NamingTheField(string body, string param, string code)
    {
        using var response = await fixture.Admin.PostAsync("/admin/v1/cluster/revocations", new StringContent(body, Encoding.UTF8, "application/json"));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal((param, code), (error.GetProperty("param").GetString(), error.GetProperty("code").GetString()));
    }

    [Fact]
    public async Task ARevocation_IsListed_WithItsSerialAsCertificatesPrintIt_AndAudited()
    {
        var created = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/cluster/revocations", new { serial = "00:0a:bc:DE", reason = "lost laptop" }, 201);
        Assert.Equal("ABCDE", created.GetProperty("serial").GetString());

        var listed = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/cluster/revocations", null, 200);
        Assert.Contains(listed.GetProperty("data").EnumerateArray(), r => r.GetProperty("serial").GetString() == "ABCDE" && r.GetProperty("reason").GetString() == "lost laptop");
        var audit = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/audit", null, 200);
        Assert.Contains(audit.GetProperty("data").EnumerateArray(), e => e.GetProperty("action").GetString() == "cluster.cert.revoke"
            && e.GetProperty("details").GetProperty("value").GetString() == "ABCDE");
    }
}
