using System.Text.Json;
using Microsoft.Data.Sqlite;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>tools/audit-verify.mjs --responses</c> with the 200s a tenant keeps of requests that did not end normally. A 200's
/// headers leave before its end is known: a stream its client closed (outcome <c>cancelled</c>), one cut by an error
/// event (<c>failed</c>), one whose process was killed mid-answer (<c>inference.interrupted</c>). The check required a
/// <c>completed</c> outcome for every 200, so the headers kept of an honest stream cut mid-way read "NOT VERIFIED"
/// (found walking an audit as an auditor: a curl stream cut after 0.5 s). A 200 whose outcome says it was refused
/// before it ran, or that has no outcome, or whose node differs from the response's <c>x-sovereign-node</c>, is still a
/// problem.
/// </summary>
public sealed class AuditVerifyMjsEndedEarlyTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-ended-early-").FullName;

    public async Task InitializeAsync()
    {
        var database = SqlDatabase.Sqlite(Path.Combine(_directory, "sovereign.db"));
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_directory, "operator-key.pem"));
        await using var log = await AuditLog.OpenAsync(database, key, new AuditLogOptions());
        foreach (var (id, action, outcome) in new[]
        {
            ("req-completed", AuditActions.InferenceCompleted, "completed"),
            ("req-cancelled", AuditActions.InferenceCompleted, "cancelled"),
            ("req-failed", AuditActions.InferenceCompleted, "failed"),
            ("req-interrupted", AuditActions.InferenceInterrupted, "interrupted"),
            ("req-rejected", AuditActions.InferenceCompleted, "rejected"),
        })
        {
            await log.AppendAsync(Entry(id, AuditActions.InferenceAllowed, null));
            await log.AppendAsync(Entry(id, action, outcome));
        }

        await log.AppendAsync(Entry("req-open", AuditActions.InferenceAllowed, null));
        await log.CheckpointAsync();
    }

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Responses_OfStreamsCutOrEndedInError_Verify_ButA200RefusedBeforeItRanOrElsewhere_DoesNot()
    {
        var (export, publicKey) = await AuditVerifyScript.ExportAsync(_directory);

        var honest = await ResponsesAsync("honest.jsonl", ("req-completed", "th-1"), ("req-cancelled", "th-1"), ("req-failed", "th-1"), ("req-interrupted", "th-1"));
        var (verified, output) = await AuditVerifyScript.RunAsync(export, publicKey, "--responses", honest);
        Assert.True(verified == 0, output);
        Assert.Contains("4 responses", output, StringComparison.Ordinal);

        var rejected = await ResponsesAsync("rejected.jsonl", ("req-rejected", "th-1"));
        (verified, output) = await AuditVerifyScript.RunAsync(export, publicKey, "--responses", rejected);
        Assert.True(verified == 3, output);
        Assert.Contains("is 'rejected': refused before it ran", output, StringComparison.Ordinal);

        var open = await ResponsesAsync("open.jsonl", ("req-open", "th-1"));
        (verified, output) = await AuditVerifyScript.RunAsync(export, publicKey, "--responses", open);
        Assert.True(verified == 3, output);
        Assert.Contains("a 200 without an outcome entry", output, StringComparison.Ordinal);

        var elsewhere = await ResponsesAsync("elsewhere.jsonl", ("req-completed", "th-2"));
        (verified, output) = await AuditVerifyScript.RunAsync(export, publicKey, "--responses", elsewhere);
        Assert.True(verified == 3, output);
        Assert.Contains("says node th-1, the response said th-2", output, StringComparison.Ordinal);
    }

    private async Task<string> ResponsesAsync(string name, params (string Id, string Node)[] responses)
    {
        var path = Path.Combine(_directory, name);
        await File.WriteAllLinesAsync(path, responses.Select(r => JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["status"] = 200,
            ["request_id"] = r.Id,
            ["audit_id"] = r.Id,
            ["jurisdiction"] = "TH",
            ["node"] = r.Node,
        })));
        return path;
    }

    private static AuditRecord Entry(string requestId, string action, string? outcome)
    {
        var details = new Dictionary<string, string> { ["request_id"] = requestId };
        if (outcome is not null)
        {
            details["outcome"] = outcome;
        }

        return new()
        {
            Kind = AuditKind.Inference,
            Tenant = "acme",
            Actor = "key-acme",
            Action = action,
            Model = "m",
            Gateway = "th-1",
            Node = "th-1",
            Jurisdiction = "TH",
            Decision = AuditDecision.Allowed,
            PromptTokens = outcome is null ? null : 3,
            CompletionTokens = outcome is null ? null : 2,
            Details = details,
        };
    }
}
