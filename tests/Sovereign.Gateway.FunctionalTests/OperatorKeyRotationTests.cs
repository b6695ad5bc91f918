using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// The operator credential could not be rotated without a restart of every member, and the token set at start could not
/// be revoked at all: a leaked <c>Sovereign:AdminToken</c> kept guarding every tenant, key and budget until each
/// member was restarted with another. <c>/admin/v1/operator-keys</c> (<c>sovereign operator-keys</c>) issues a key
/// while the old credential still works, then revokes the old one, configured token included; audited with the key id,
/// never the secret; stored as a hash; read from the shared database on every operator request, so every member
/// refuses a revoked credential from the answer on. Each test has a server of its own (they revoke its token).
/// </summary>
public sealed class OperatorKeyRotationTests
{
    private const string Configured = "the-configured-operator-token-0001";

    private sealed class Server() : AdminServerFixture(Configured, "sovereign-operator-keys-")
    {
        protected override IDictionary<string, string?> Overrides => new Dictionary<string, string?> { ["Sovereign:BuiltInEmbeddings"] = "false" };
    }

    private static async Task<(HttpStatusCode Status, string Body)> AsAsync(Server server, string token, HttpMethod method, string path, object? body = null)
    {
        using var http = new HttpClient { BaseAddress = server.Address };
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : System.Net.Http.Json.JsonContent.Create(body) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ANewKeyWorksBesideTheOldToken_ThenTheOldTokenIsRevoked_OnTheApiMetricsAndReady_AndEachStepIsAudited()
    {
        var server = new Server();
        await server.InitializeAsync();
        try
        {
            // Overlap: the new key and the configured token both work.
            var created = await server.SendAsync(HttpMethod.Post, "/admin/v1/operator-keys", new { name = "ops-2027" }, 201);
            var secret = created.GetProperty("secret").GetString()!;
            var id = created.GetProperty("key").GetProperty("id").GetString()!;
            Assert.StartsWith("sov-op-", secret, StringComparison.Ordinal);
            Assert.StartsWith("opk_", id, StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.OK, (await AsAsync(server, secret, HttpMethod.Get, "/admin/v1/tenants")).Status);
            Assert.Equal(HttpStatusCode.OK, (await AsAsync(server, Configured, HttpMethod.Get, "/admin/v1/tenants")).Status);
            Assert.Equal(HttpStatusCode.OK, (await AsAsync(server, secret, HttpMethod.Get, "/metrics")).Status);

            // The list shows both, never a secret nor its hash.
            var (listed, list) = await AsAsync(server, secret, HttpMethod.Get, "/admin/v1/operator-keys");
            Assert.Equal(HttpStatusCode.OK, listed);
            Assert.DoesNotContain(secret, list, StringComparison.Ordinal);
            Assert.DoesNotContain(secret[7..], list, StringComparison.Ordinal);
            Assert.DoesNotContain(Configured, list, StringComparison.Ordinal);
            Assert.DoesNotContain(AdminToken.HashOf(secret), list, StringComparison.Ordinal);
            var keys = JsonDocument.Parse(list).RootElement.GetProperty("data").EnumerateArray().ToList();
            Assert.Contains(keys, k => k.GetProperty("id").GetString() == "operator" && k.GetProperty("state").GetString() == "active");
            Assert.Contains(keys, k => k.GetProperty("id").GetString() == id && k.GetProperty("state").GetString() == "active"
                && k.GetProperty("current").GetBoolean() && k.GetProperty("created_by").GetString() == "operator");

            // The old (configured) token is revoked with the new key: refused everywhere it was accepted.
            var (revoked, revokedBody) = await AsAsync(server, secret, HttpMethod.Delete, "/admin/v1/operator-keys/operator");
            Assert.True(revoked == HttpStatusCode.OK, revokedBody);
            Assert.Equal(HttpStatusCode.Unauthorized, (await AsAsync(server, Configured, HttpMethod.Get, "/admin/v1/tenants")).Status);
            Assert.Equal(HttpStatusCode.Unauthorized, (await AsAsync(server, Configured, HttpMethod.Get, "/metrics")).Status);
            var (_, ready) = await AsAsync(server, Configured, HttpMethod.Get, "/ready");
            Assert.DoesNotContain("models", ready, StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.OK, (await AsAsync(server, secret, HttpMethod.Get, "/admin/v1/tenants")).Status);

            // Audited: who, which key id; never a secret.
            var (_, auditText) = await AsAsync(server, secret, HttpMethod.Get, "/admin/v1/audit?order=desc&limit=20");
            Assert.DoesNotContain(secret, auditText, StringComparison.Ordinal);
            Assert.DoesNotContain(Configured, auditText, StringComparison.Ordinal);
            var entries = JsonDocument.Parse(auditText).RootElement.GetProperty("data").EnumerateArray().ToList();
            Assert.Contains(entries, e => e.GetProperty("action").GetString() == "operator_key.create" && e.GetProperty("actor").GetString() == "operator"
                && e.GetProperty("details").GetProperty("key_id").GetString() == id);
            Assert.Contains(entries, e => e.GetProperty("action").GetString() == "operator_key.revoke" && e.GetProperty("actor").GetString() == $"operator:ops-2027/{id}"
                && e.GetProperty("details").GetProperty("key_id").GetString() == "operator");

            // Then the issued key itself is rotated: a third credential revokes it.
            var next = await AsAsync(server, secret, HttpMethod.Post, "/admin/v1/operator-keys", new { name = "ops-2028" });
            var nextSecret = JsonDocument.Parse(next.Body).RootElement.GetProperty("secret").GetString()!;
            Assert.Equal(HttpStatusCode.OK, (await AsAsync(server, nextSecret, HttpMethod.Delete, $"/admin/v1/operator-keys/{id}")).Status);
            Assert.Equal(HttpStatusCode.Unauthorized, (await AsAsync(server, secret, HttpMethod.Get, "/admin/v1/tenants")).Status);
            Assert.Equal(HttpStatusCode.OK, (await AsAsync(server, nextSecret, HttpMethod.Get, "/admin/v1/tenants")).Status);
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task ACredentialCannotRevokeItself_AndUnknownIdsAndBadBodiesAreFourHundreds()
    {
        var server = new Server();
        await server.InitializeAsync();
        try
        {
            var self = await server.SendAsync(HttpMethod.Delete, "/admin/v1/operator-keys/operator", null, 409);
            Assert.Equal("operator_key_in_use", self.GetProperty("error").GetProperty("code").GetString());
            var created = await server.SendAsync(HttpMethod.Post, "/admin/v1/operator-keys", new { name = "ci" }, 201);
            var secret = created.GetProperty("secret").GetString()!;
            var id = created.GetProperty("key").GetProperty("id").GetString()!;
            var (status, body) = await AsAsync(server, secret, HttpMethod.Delete, $"/admin/v1/operator-keys/{id}");
            Assert.True(status == HttpStatusCode.Conflict, body);

            var unknown = await server.SendAsync(HttpMethod.Delete, "/admin/v1/operator-keys/opk_0000000000000000", null, 404);
            Assert.Equal("operator_key_not_found", unknown.GetProperty("error").GetProperty("code").GetString());
            await server.SendAsync(HttpMethod.Delete, "/admin/v1/operator-keys/operator:nobody", null, 404);
            var noName = await server.SendAsync(HttpMethod.Post, "/admin/v1/operator-keys", new { }, 400);
            Assert.Equal("name", noName.GetProperty("error").GetProperty("param").GetString());
            await server.SendAsync(HttpMethod.Post, "/admin/v1/operator-keys", new { name = "a/opk_1" }, 400);
            await server.SendAsync(HttpMethod.Post, "/admin/v1/operator-keys", new { name = "x", expires_in = -5 }, 400);
            await server.SendAsync(HttpMethod.Post, "/admin/v1/operator-keys", new { name = "x", secret = "mine" }, 400);

            // Revoking again answers the first revocation, audited once.
            var first = await server.SendAsync(HttpMethod.Delete, $"/admin/v1/operator-keys/{id}", null, 200);
            var again = await server.SendAsync(HttpMethod.Delete, $"/admin/v1/operator-keys/{id}", null, 200);
            Assert.Equal(first.GetProperty("revoked_at").GetInt64(), again.GetProperty("revoked_at").GetInt64());
            Assert.False(again.GetProperty("newly").GetBoolean());
            var audit = await server.SendAsync(HttpMethod.Get, "/admin/v1/audit?order=desc&limit=50", null, 200);
            Assert.Single(audit.GetProperty("data").EnumerateArray(), e => e.GetProperty("action").GetString() == "operator_key.revoke");
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    /// <summary>
    /// A second member on the same database (another <see cref="AdminToken"/> over the server's store, holding the same
    /// configured token) refuses a credential revoked at the first on its next check: nothing is cached to expire. An
    /// expired key is refused as a revoked one.
    /// </summary>
    [Fact]
    public async Task AnotherMemberOnTheSameDatabase_RefusesARevocationAtItsNextCheck_AndAnExpiredKeyIsRefused()
    {
        var server = new Server();
        await server.InitializeAsync();
        try
        {
            var other = new AdminToken(Options.Create(new SovereignOptions { AdminToken = Configured, DataDirectory = server.DataDirectory }),
                null, null, server.App.Services, TimeProvider.System);
            var created = await server.SendAsync(HttpMethod.Post, "/admin/v1/operator-keys", new { name = "rotation" }, 201);
            var secret = created.GetProperty("secret").GetString()!;
            var id = created.GetProperty("key").GetProperty("id").GetString()!;
            Assert.Equal($"operator:rotation/{id}", (await other.IdentifyAsync(secret))?.Actor);
            Assert.Equal("operator", (await other.IdentifyAsync(Configured))?.Actor);
            Assert.Null(await other.IdentifyAsync("sov-op-guessed-and-wrong"));

            Assert.Equal(HttpStatusCode.OK, (await AsAsync(server, secret, HttpMethod.Delete, "/admin/v1/operator-keys/operator")).Status);
            Assert.Null(await other.IdentifyAsync(Configured));
            await server.SendAsync(HttpMethod.Delete, $"/admin/v1/operator-keys/{id}", null, 401);
            var third = await AsAsync(server, secret, HttpMethod.Post, "/admin/v1/operator-keys", new { name = "third" });
            var thirdSecret = JsonDocument.Parse(third.Body).RootElement.GetProperty("secret").GetString()!;
            Assert.Equal(HttpStatusCode.OK, (await AsAsync(server, thirdSecret, HttpMethod.Delete, $"/admin/v1/operator-keys/{id}")).Status);
            Assert.Null(await other.IdentifyAsync(secret));

            var store = server.App.Services.GetRequiredService<ControlPlaneStore>();
            var (expiredId, expiredSecret, prefix, hash) = AdminToken.CreateKey();
            var past = DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds();
            await store.InsertOperatorKeyAsync(new OperatorKeyRecord(expiredId, "old", prefix, hash, past - 1000, "operator", past, null, null));
            Assert.Equal(HttpStatusCode.Unauthorized, (await AsAsync(server, expiredSecret, HttpMethod.Get, "/admin/v1/tenants")).Status);
            Assert.Null(await other.IdentifyAsync(expiredSecret));
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    /// <summary>
    /// Found by operator1 (session 56) following "Rotating secrets": after <c>admin-keys revoke operator</c>, the revoked
    /// token got the generic 401 ("needs the operator token; tenant keys are not accepted here"), and the CLI added to
    /// send the admin-token file's token, the very one refused. A revoked or expired credential is now named, with when,
    /// as a tenant's revoked or expired key is; any other token still gets the generic answer, with no reason.
    /// </summary>
    [Fact]
    public async Task ARevokedOrExpiredCredential_IsRefusedNamingItAndWhen_OnTheApiMetricsAndTheCli()
    {
        var server = new Server();
        await server.InitializeAsync();
        try
        {
            var created = await server.SendAsync(HttpMethod.Post, "/admin/v1/operator-keys", new { name = "ops-next" }, 201);
            var secret = created.GetProperty("secret").GetString()!;
            Assert.Equal(HttpStatusCode.OK, (await AsAsync(server, secret, HttpMethod.Delete, "/admin/v1/operator-keys/operator")).Status);

            foreach (var path in (string[])["/admin/v1/tenants", "/metrics"])
            {
                var (status, body) = await AsAsync(server, Configured, HttpMethod.Get, path);
                Assert.Equal(HttpStatusCode.Unauthorized, status);
                var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
                Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
                Assert.Matches(@"^The operator credential operator was revoked at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: use another operator key or token", error.GetProperty("message").GetString());
            }

            var store = server.App.Services.GetRequiredService<ControlPlaneStore>();
            var (expiredId, expiredSecret, prefix, hash) = AdminToken.CreateKey();
            var past = DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds();
            await store.InsertOperatorKeyAsync(new OperatorKeyRecord(expiredId, "old", prefix, hash, past - 1000, "operator", past, null, null));
            var (expiredStatus, expiredBody) = await AsAsync(server, expiredSecret, HttpMethod.Get, "/admin/v1/tenants");
            Assert.Equal(HttpStatusCode.Unauthorized, expiredStatus);
            var expired = JsonDocument.Parse(expiredBody).RootElement.GetProperty("error");
            Assert.Equal("key_expired", expired.GetProperty("code").GetString());
            Assert.StartsWith($"The operator credential {expiredId} expired at ", expired.GetProperty("message").GetString(), StringComparison.Ordinal);

            // A token nobody issued learns nothing more than before.
            var (_, unknownBody) = await AsAsync(server, "sov-op-guessed-and-wrong", HttpMethod.Get, "/admin/v1/tenants");
            Assert.Contains("needs the operator token", unknownBody, StringComparison.Ordinal);

            var (exit, _, stderr) = await CliProcess.RunAsync("tenants", "list", "--url", server.Address.ToString(), "--admin-token", Configured);
            Assert.Equal(1, exit);
            Assert.Contains("The operator credential operator was revoked at", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("give this server's operator token", stderr, StringComparison.Ordinal);
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    /// <summary>The CLI round: create prints the secret on its last line, list shows no secret, revoke with the new key.</summary>
    [Fact]
    public async Task TheCli_CreatesListsAndRevokes_WithTheSecretOnlyOnCreate()
    {
        var server = new Server();
        await server.InitializeAsync();
        try
        {
            var url = server.Address.ToString();
            var (exit, stdout, stderr) = await CliProcess.RunAsync("operator-keys", "create", "--name", "ops-cli", "--expires-in", "30d", "--url", url, "--admin-token", Configured);
            Assert.True(exit == 0, stderr);
            var secret = stdout.Trim().Split('\n')[^1].Trim();
            Assert.StartsWith("sov-op-", secret, StringComparison.Ordinal);

            (exit, stdout, stderr) = await CliProcess.RunAsync("operator-keys", "list", "--url", url, "--admin-token", secret);
            Assert.True(exit == 0, stderr);
            Assert.Contains("ops-cli", stdout, StringComparison.Ordinal);
            Assert.Contains("(this one)", stdout, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, stdout, StringComparison.Ordinal);

            (exit, _, stderr) = await CliProcess.RunAsync("operator-keys", "revoke", "operator", "--url", url, "--admin-token", Configured);
            Assert.NotEqual(0, exit);
            Assert.Contains("authenticates with", stderr, StringComparison.Ordinal);
            (exit, stdout, stderr) = await CliProcess.RunAsync("operator-keys", "revoke", "operator", "--url", url, "--admin-token", secret);
            Assert.True(exit == 0, stderr);
            Assert.Contains("Revoked operator.", stdout, StringComparison.Ordinal);
            (exit, _, _) = await CliProcess.RunAsync("tenants", "list", "--url", url, "--admin-token", Configured);
            Assert.NotEqual(0, exit);
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    /// <summary>
    /// A secret pasted where its id belongs (<c>operator-keys revoke sov-op-...</c>, <c>keys revoke TENANT sk-sov-...</c>)
    /// reached the log at Information (event 4001 logs the path) and came back in the 404's message. Both now cut it
    /// after its prefix; a revoked key presented is logged by id (4163), never by secret.
    /// </summary>
    [Fact]
    public async Task ASecretPastedInAPath_IsNeitherLoggedNorEchoed_AndARevokedKeyIsLoggedByIdOnly()
    {
        var server = new Server();
        await server.InitializeAsync();
        var captured = new System.Collections.Concurrent.ConcurrentQueue<(string Category, Microsoft.Extensions.Logging.LogLevel Level, Microsoft.Extensions.Logging.EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        server.App.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().AddProvider(capture);
        try
        {
            var created = await server.SendAsync(HttpMethod.Post, "/admin/v1/operator-keys", new { name = "pasted" }, 201);
            var secret = created.GetProperty("secret").GetString()!;
            var id = created.GetProperty("key").GetProperty("id").GetString()!;
            var tenantSecret = Residency.ControlPlane.ApiKeySecrets.Create().Secret;

            var pasted = await server.SendAsync(HttpMethod.Delete, $"/admin/v1/operator-keys/{secret}", null, 404);
            var tenantPasted = await server.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/nobody/keys/{tenantSecret}/rotate", null, 404);
            await server.SendAsync(HttpMethod.Delete, $"/admin/v1/operator-keys/{id}", null, 200);
            Assert.Equal(HttpStatusCode.Unauthorized, (await AsAsync(server, secret, HttpMethod.Get, "/admin/v1/tenants")).Status);

            var secretPart = secret["sov-op-".Length..];
            var tenantPart = tenantSecret["sk-sov-".Length..];
            Assert.DoesNotContain(secretPart, pasted.GetRawText(), StringComparison.Ordinal);
            Assert.DoesNotContain(tenantPart, tenantPasted.GetRawText(), StringComparison.Ordinal);
            Assert.Contains(captured, l => l.Event.Id == 4001 && l.Message.Contains("/admin/v1/operator-keys/sov-op-[redacted]", StringComparison.Ordinal));
            Assert.Contains(captured, l => l.Event.Id == 4163 && l.Message.Contains(id, StringComparison.Ordinal));
            Assert.DoesNotContain(captured, l => l.Message.Contains(secretPart, StringComparison.Ordinal) || l.Message.Contains(tenantPart, StringComparison.Ordinal));
        }
        finally
        {
            capture.Stop();
            await server.DisposeAsync();
        }
    }
}
