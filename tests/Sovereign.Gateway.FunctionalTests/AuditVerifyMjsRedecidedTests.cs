using System.Text.Json;
using Microsoft.Data.Sqlite;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>tools/audit-verify.mjs --responses</c> ties each response to the entries of its request id. A request is decided
/// more than once under that id when it fails over to another node (the second decision may be in another allowed
/// jurisdiction) or is decided again and refused (its tenant's policy changed meanwhile); the check compared every
/// decision with the response, so an honest failover to SG answered from SG was flagged ("entry N says TH"). It compares
/// the decision the outcome followed (the last one, for a refusal), and still catches a response that lies about it.
/// </summary>
public sealed class AuditVerifyMjsRedecidedTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-redecided-").FullName;

    public async Task InitializeAsync()
    {
        var database = SqlDatabase.Sqlite(Path.Combine(_directory, "sovereign.db"));
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_directory, "operator-key.pem"));
        await using var log = await AuditLog.OpenAsync(database, key, new AuditLogOptions());

        // Failed over: decided for a TH node that could not be reached, then for an SG node, which answered.
        await log.AppendAsync(Decision("req-failover", "th-1", "TH", AuditDecision.Allowed));
        await log.AppendAsync(Decision("req-failover", "sg-1", "SG", AuditDecision.Allowed));
        await log.AppendAsync(Outcome("req-failover", "sg-1", "SG"));

        // Decided for an SG node on a cached policy, then decided again at the TH gateway and refused.
        await log.AppendAsync(Decision("req-redecided", "sg-1", "SG", AuditDecision.Allowed));
        await log.AppendAsync(Decision("req-redecided", null, "TH", AuditDecision.Refused));
        await log.CheckpointAsync();
    }

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Responses_OfAFailedOverAndARedecidedRequest_AreComparedWithTheDecisionTheOutcomeFollowed()
    {
        var (export, publicKey) = await AuditVerifyScript.ExportAsync(_directory);

        var honest = await ResponsesAsync("honest.jsonl", (200, "req-failover", "SG"), (403, "req-redecided", "TH"));
        var (verified, output) = await AuditVerifyScript.RunAsync(export, publicKey, "--responses", honest);
        Assert.True(verified == 0, output);
        Assert.Contains("2 responses", output, StringComparison.Ordinal);

        // A response that says it ran where the outcome's decision did not send it is still caught.
        var lying = await ResponsesAsync("lying.jsonl", (200, "req-failover", "TH"));
        (verified, output) = await AuditVerifyScript.RunAsync(export, publicKey, "--responses", lying);
        Assert.True(verified == 3, output);
        Assert.Contains("the response said TH", output, StringComparison.Ordinal);
    }

    private async Task<string> ResponsesAsync(string name, params (int Status, string Id, string Jurisdiction)[] responses)
    {
        var path = Path.Combine(_directory, name);
        await File.WriteAllLinesAsync(path, responses.Select(r => JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["status"] = r.Status,
            ["request_id"] = r.Id,
            ["audit_id"] = r.Id,
            ["jurisdiction"] = r.Jurisdiction,
        })));
        return path;
    }

    private static AuditRecord Decision(string requestId, string? node, string jurisdiction, AuditDecision decision) => new()
    {
        Kind = AuditKind.Inference,
        Tenant = "acme",
        Actor = "key-acme",
        Action = decision == AuditDecision.Allowed ? AuditActions.InferenceAllowed : AuditActions.InferenceRefused,
        Model = "m",
        Gateway = "gw-th",
        Node = node,
        Jurisdiction = jurisdiction,
        Decision = decision,
        DecisionCode = decision == AuditDecision.Refused ? "jurisdiction_not_allowed" : null,
        Details = new Dictionary<string, string> { ["request_id"] = requestId },
    };

    private static AuditRecord Outcome(string requestId, string node, string jurisdiction) => new()
    {
        Kind = AuditKind.Inference,
        Tenant = "acme",
        Actor = "key-acme",
        Action = AuditActions.InferenceCompleted,
        Model = "m",
        Gateway = "gw-th",
        Node = node,
        Jurisdiction = jurisdiction,
        Decision = AuditDecision.Allowed,
        PromptTokens = 3,
        CompletionTokens = 2,
        Details = new Dictionary<string, string> { ["request_id"] = requestId, ["outcome"] = "completed" },
    };
}
