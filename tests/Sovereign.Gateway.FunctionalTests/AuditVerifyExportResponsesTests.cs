using System.Text.Json;
using Microsoft.Data.Sqlite;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>sovereign audit verify-export --responses FILE</c>: the responses a client kept, checked against the export as
/// <c>tools/audit-verify.mjs --responses</c> checks them. Only the script could take them: an auditor with the CLI alone
/// could not tie a kept response to its entries. Each file here is given to both, which must agree on the verdict
/// (exit 0 or 3) and name the same disagreement.
/// </summary>
public sealed class AuditVerifyExportResponsesTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-verify-responses-").FullName;
    private string _export = "";
    private string _publicKey = "";

    public async Task InitializeAsync()
    {
        var database = SqlDatabase.Sqlite(Path.Combine(_directory, "sovereign.db"));
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_directory, "operator-key.pem"));
        await using (var log = await AuditLog.OpenAsync(database, key, new AuditLogOptions()))
        {
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
                await log.AppendAsync(Entry(id, action, outcome, responseId: id == "req-completed" ? "chatcmpl-kept" : null));
            }

            await log.AppendAsync(Entry("req-open", AuditActions.InferenceAllowed, null));
            await log.AppendAsync(Entry("req-refused", AuditActions.InferenceRefused, null) with { Decision = AuditDecision.Refused });
            await log.CheckpointAsync();
        }

        (_export, _publicKey) = await AuditVerifyScript.ExportAsync(_directory);
    }

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>The export's line of <paramref name="requestId"/>'s entry with <paramref name="action"/>: its sequence and hash.</summary>
    private (long Sequence, string Hash) Line(string requestId, string action)
    {
        foreach (var text in File.ReadLines(_export))
        {
            using var line = JsonDocument.Parse(text);
            var root = line.RootElement;
            if (root.GetProperty("type").GetString() == "entry" && root.GetProperty("action").GetString() == action
                && root.TryGetProperty("details", out var details) && details.TryGetProperty("request_id", out var id) && id.GetString() == requestId)
            {
                return (root.GetProperty("sequence").GetInt64(), root.GetProperty("hash").GetString()!);
            }
        }

        throw new InvalidOperationException($"no {action} entry of {requestId}");
    }

    public static TheoryData<string, int, string> Cases => new()
    {
        // name, exit (both verifiers), what the output names
        { "honest", 0, "" },
        { "rejected", 3, "is 'rejected': refused before it ran" },
        { "open", 3, "a 200 without an outcome entry" },
        { "elsewhere", 3, "says node th-1, the response said th-2" },
        { "other-jurisdiction", 3, "says TH, the response said DE" },
        { "refused-200", 3, "a 200, but entry" },
        { "completed-403", 3, "a 403 without a refused decision" },
        { "unknown-request", 3, "no entry has this request_id" },
        { "unknown-body-id", 3, "no outcome entry names this response id" },
        { "other-body-id", 3, "names response chatcmpl-kept, the body said chatcmpl-other" },
        { "rewritten", 3, "the log was rewritten after the response" },
        { "entry-not-the-outcome", 3, "not the outcome of this request" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task KeptResponses_TheCliAndTheScript_AgreeOnEachCheck(string name, int exit, string names)
    {
        var (completedSequence, completedHash) = Line("req-completed", AuditActions.InferenceCompleted);
        var (decisionSequence, decisionHash) = Line("req-completed", AuditActions.InferenceAllowed);
        static Dictionary<string, object> Response(string id, int status = 200, string node = "th-1", string jurisdiction = "TH") =>
            new() { ["status"] = status, ["request_id"] = id, ["audit_id"] = id, ["jurisdiction"] = jurisdiction, ["node"] = node };
        static Dictionary<string, object> With(Dictionary<string, object> response, string field, string value)
        {
            response[field] = value;
            return response;
        }

        var responses = name switch
        {
            "honest" => [
                With(With(Response("req-completed"), "id", "chatcmpl-kept"), "audit_entry", $"{completedSequence}:{completedHash}"),
                Response("req-cancelled"), Response("req-failed"), Response("req-interrupted"), Response("req-refused", status: 403),
                new() { ["id"] = "chatcmpl-kept" }, // the body alone, its headers not kept
                new() { ["status"] = 401 }, // no audit id: claims no decision
            ],
            "rejected" => [Response("req-rejected")],
            "open" => [Response("req-open")],
            "elsewhere" => [Response("req-completed", node: "th-2")],
            "other-jurisdiction" => [Response("req-completed", jurisdiction: "DE")],
            "refused-200" => [Response("req-refused")],
            "completed-403" => [Response("req-completed", status: 403)],
            "unknown-request" => [Response("req-never")],
            "unknown-body-id" => [new() { ["id"] = "chatcmpl-never" }],
            "other-body-id" => [With(Response("req-completed"), "id", "chatcmpl-other")],
            "rewritten" => [With(Response("req-completed"), "audit_entry", $"{completedSequence}:{new string('0', 64)}")],
            "entry-not-the-outcome" => [With(Response("req-completed"), "audit_entry", $"{decisionSequence}:{decisionHash}")],
            _ => new List<Dictionary<string, object>>(),
        };
        var file = Path.Combine(_directory, name + ".jsonl");
        await File.WriteAllLinesAsync(file, responses.Select(r => JsonSerializer.Serialize(r)));

        var (scriptExit, scriptOutput) = await AuditVerifyScript.RunAsync(_export, _publicKey, "--responses", file);
        var (cliExit, cliOutput, cliError) = await CliProcess.RunAsync("audit", "verify-export", _export, "--public-key", _publicKey, "--responses", file);

        Assert.True(scriptExit == exit, scriptOutput);
        Assert.True(cliExit == exit, cliOutput + cliError);
        Assert.Contains(names, scriptOutput, StringComparison.Ordinal);
        Assert.Contains(names, cliOutput, StringComparison.Ordinal);
        if (exit == 0)
        {
            // The 401 claims no decision: six checked, as the script counts them.
            Assert.Contains("6 responses", scriptOutput, StringComparison.Ordinal);
            Assert.Contains("Checked 6 kept responses: each agrees with its entries.", cliOutput, StringComparison.Ordinal);
            Assert.Contains("The export is intact and signed by the operator.", cliOutput, StringComparison.Ordinal);
        }
        else
        {
            Assert.Contains("The export does not verify.", cliOutput, StringComparison.Ordinal);
            Assert.Contains(name == "rewritten" ? nameof(AuditProblemKind.WitnessMismatch) : nameof(AuditProblemKind.ResponseMismatch), cliOutput, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task AResponsesFileThatIsNotJsonLines_OrIsMissing_IsAUsageError_NamingIt()
    {
        var file = Path.Combine(_directory, "broken.jsonl");
        await File.WriteAllTextAsync(file, "{\"status\":200,\"audit_id\":\"req-completed\",\"jurisdiction\":\"TH\"}\nnot json\n");

        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", _export, "--public-key", _publicKey, "--responses", file);

        Assert.True(exit == 2, stdout + stderr);
        Assert.Contains("line 2 of the responses file is not JSON", stderr, StringComparison.Ordinal);

        (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify-export", _export, "--public-key", _publicKey, "--responses", Path.Combine(_directory, "absent.jsonl"));

        Assert.True(exit == 2, stdout + stderr);
        Assert.Contains("--responses", stderr, StringComparison.Ordinal);
        Assert.Contains("does not exist", stderr, StringComparison.Ordinal);
    }

    private static AuditRecord Entry(string requestId, string action, string? outcome, string? responseId = null)
    {
        var details = new Dictionary<string, string> { ["request_id"] = requestId };
        if (outcome is not null)
        {
            details["outcome"] = outcome;
        }

        if (responseId is not null)
        {
            details["response_id"] = responseId;
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
