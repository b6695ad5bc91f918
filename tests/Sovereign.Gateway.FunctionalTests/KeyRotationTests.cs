using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// A tenant key rotated with overlap: <c>POST /admin/v1/tenants/{id}/keys/{key_id}/rotate</c> (<c>sovereign keys
/// rotate</c>) issues a replacement with the old key's name and policy while the old one keeps working; once revoked,
/// the old one is refused on every endpoint. Before, a rotation was issuing a new key by hand, restating its policy.
/// </summary>
[Collection(ResidencyCollection.Name)]
public sealed class KeyRotationTests(ResidencyFixture fixture)
{
    private static StringContent Chat() =>
        new("""{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":2}""", Encoding.UTF8, "application/json");

    [Fact]
    public async Task ARotatedKey_KeepsNameAndPolicy_BothWorkUntilTheOldIsRevoked_ThenTheOldIsRefusedEverywhere()
    {
        var created = await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants/th-hospital/keys",
            new { name = "billing-service", policy = new { allowed_jurisdictions = new[] { "TH" } } }, 201);
        var oldId = created.GetProperty("key").GetProperty("id").GetString()!;
        using var oldClient = fixture.TenantClient(created.GetProperty("secret").GetString()!);

        var rotated = await fixture.AdminAsync(HttpMethod.Post, $"/admin/v1/tenants/th-hospital/keys/{oldId}/rotate", new { expires_in = 86_400 }, 201);
        var newKey = rotated.GetProperty("key");
        var newId = newKey.GetProperty("id").GetString()!;
        using var newClient = fixture.TenantClient(rotated.GetProperty("secret").GetString()!);

        Assert.NotEqual(oldId, newId);
        Assert.Equal(oldId, rotated.GetProperty("rotated_from").GetString());
        Assert.Equal("billing-service", newKey.GetProperty("name").GetString());
        Assert.Equal("TH", newKey.GetProperty("policy").GetProperty("allowed_jurisdictions")[0].GetString());
        Assert.NotEqual(JsonValueKind.Null, newKey.GetProperty("expires_at").ValueKind);
        using (var both = await oldClient.PostAsync("/v1/chat/completions", Chat()))
        {
            Assert.Equal(200, (int)both.StatusCode);
        }

        using (var both = await newClient.PostAsync("/v1/chat/completions", Chat()))
        {
            Assert.Equal(200, (int)both.StatusCode);
        }

        await fixture.AdminAsync(HttpMethod.Delete, $"/admin/v1/tenants/th-hospital/keys/{oldId}", null, 200);

        foreach (var (method, path) in new[] { ("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/v1/keys"), ("GET", "/v1/usage") })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = method == "POST" ? Chat() : null };
            using var refused = await oldClient.SendAsync(request);
            Assert.True(401 == (int)refused.StatusCode, $"{method} {path}: {(int)refused.StatusCode}");
        }

        using (var still = await newClient.PostAsync("/v1/chat/completions", Chat()))
        {
            Assert.Equal(200, (int)still.StatusCode);
        }

        var audit = await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/audit?tenant=th-hospital&order=desc&limit=50", null, 200);
        Assert.Contains(audit.GetProperty("data").EnumerateArray(), e => e.GetProperty("action").GetString() == "key.create"
            && e.GetProperty("details").GetProperty("key_id").GetString() == newId
            && e.GetProperty("details").GetProperty("rotated_from").GetString() == oldId);

        // A rotation keeps the name and policy: naming others is a 400; an unknown key a 404.
        await fixture.AdminAsync(HttpMethod.Post, $"/admin/v1/tenants/th-hospital/keys/{newId}/rotate", new { name = "other" }, 400);
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants/th-hospital/keys/key_0000000000000000/rotate", null, 404);
    }
}
