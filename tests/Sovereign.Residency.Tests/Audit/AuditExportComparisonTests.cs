using System.Text;
using System.Text.Json.Nodes;
using Sovereign.Residency.Audit;

namespace Sovereign.Residency.Tests.Audit;

/// <summary>
/// An auditor's earlier export against a later one (<c>audit verify-export FILE --earlier OLDER</c>). The operator holds
/// the signing key: a log rebuilt without a request (or with one changed), re-hashed and signed again exports a file that
/// verifies on its own. Only what the operator signed before, kept by the auditor, shows it.
/// </summary>
public sealed class AuditExportComparisonTests
{
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2025-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task Compare_AnHonestLaterExport_AgreesWithTheEarlierOne_TenantsOrEveryTenants()
    {
        await using var context = await SeedAsync(30);
        var earlier = await ExportAsync(context, "acme");
        await AppendAsync(context, 30, 10);
        var later = await ExportAsync(context, "acme");
        var everything = await ExportAsync(context, null);

        Assert.Empty(await CompareAsync(later, earlier));
        Assert.Empty(await CompareAsync(everything, earlier));

        // The older file handed over as the newer one: its hashes agree, but it says nothing newer (and, its range
        // reaching past the newer one's making, lacks the newer one's last entries).
        var replayed = await CompareAsync(earlier, later);
        Assert.Equal(2, replayed.Count);
        Assert.Contains(replayed, p => p.Kind == AuditProblemKind.OutOfScope && p.Message.Contains("it is older, not newer", StringComparison.Ordinal));
        Assert.Contains(replayed, p => p.Kind == AuditProblemKind.Truncated && p.Sequence == 31);
        Assert.True((await AuditExport.VerifyExportAsync(Stream(later), context.Key.PublicKeyPem)).Valid);
    }

    [Fact]
    public async Task Compare_AHistoryRebuiltWithOneEntryChanged_AndSignedAgain_IsAWitnessMismatchAtThatEntry()
    {
        await using var context = await SeedAsync(30);
        var earlier = await ExportAsync(context, "acme");

        // The operator rebuilds the log with the same key: entry 9 (acme's) now names another model.
        await using var rebuilt = AuditTestContext.Create(context.KeyPath);
        rebuilt.Time.Set(Start);
        await using (var log = await rebuilt.OpenLogAsync())
        {
            for (var i = 0; i < 40; i++)
            {
                await log.AppendAsync(AuditTestContext.Inference(i % 2 == 0 ? "acme" : "globex", i, model: i == 8 ? "another-model" : "llama-3.1-8b"));
                rebuilt.Time.Advance(TimeSpan.FromMilliseconds(1));
            }
        }

        var forged = await ExportAsync(rebuilt, "acme");
        var alone = await AuditExport.VerifyExportAsync(Stream(forged), context.Key.PublicKeyPem);
        var problems = await CompareAsync(forged, earlier);

        Assert.True(alone.Valid, string.Join("\n", alone.Problems)); // on its own it verifies: the same key signed it
        var first = Assert.Single(problems, p => p.Sequence == 9);
        Assert.Equal(AuditProblemKind.WitnessMismatch, first.Kind);
        Assert.Contains("the operator signed two different histories", first.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(problems, p => p.Sequence < 9);
    }

    [Fact]
    public async Task Compare_ALogCutBackBelowTheEarlierExport_IsTruncated()
    {
        await using var context = await SeedAsync(30);
        var earlier = await ExportAsync(context, "acme");

        await using var rolledBack = AuditTestContext.Create(context.KeyPath);
        rolledBack.Time.Set(Start);
        await using (var log = await rolledBack.OpenLogAsync())
        {
            await rolledBack.AppendManyAsync(log, 20, "acme", "globex");
        }

        var problems = await CompareAsync(await ExportAsync(rolledBack, "acme"), earlier);

        var cut = Assert.Single(problems);
        Assert.Equal((AuditProblemKind.Truncated, 21L), (cut.Kind, cut.Sequence));
        Assert.Contains("holds entries up to 30", cut.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Compare_AnOwnEntryTheEarlierExportShowed_HiddenInAGapLine_IsReported()
    {
        await using var context = await SeedAsync(30);
        var earlier = await ExportAsync(context, "acme");
        var later = await ExportAsync(context, "acme");
        var lines = later.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
        var at = lines.FindIndex(l => l.Contains("\"type\":\"entry\",\"sequence\":5,", StringComparison.Ordinal));
        var entry = JsonNode.Parse(lines[at])!;
        lines[at] = new JsonObject
        {
            ["type"] = "gap", ["fromSequence"] = 5, ["toSequence"] = 5,
            ["previousHash"] = entry["previousHash"]!.GetValue<string>(), ["hash"] = entry["hash"]!.GetValue<string>(),
        }.ToJsonString();

        var problems = await CompareAsync(string.Join('\n', lines) + "\n", earlier);

        var hidden = Assert.Single(problems);
        Assert.Equal((AuditProblemKind.OutOfScope, 5L), (hidden.Kind, hidden.Sequence));
        Assert.Contains("shown in full in the earlier export", hidden.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Compare_FilesWithNoCommonSequence_SayNothingCanBeCompared()
    {
        await using var context = await SeedAsync(30);
        var earlier = await ExportAsync(context, null, Start, Start.AddMilliseconds(10));
        var later = await ExportAsync(context, null, Start.AddMilliseconds(20), Start.AddMilliseconds(30));

        var problems = await CompareAsync(later, earlier);

        var none = Assert.Single(problems);
        Assert.Equal(AuditProblemKind.OutOfScope, none.Kind);
        Assert.Contains("state no hash at a common sequence", none.Message, StringComparison.Ordinal);
    }

    private static async Task<AuditTestContext> SeedAsync(int count)
    {
        var context = AuditTestContext.Create();
        context.Time.Set(Start);
        await AppendAsync(context, 0, count);
        return context;
    }

    private static async Task AppendAsync(AuditTestContext context, int from, int count)
    {
        await using var log = await context.OpenLogAsync();
        for (var i = from; i < from + count; i++)
        {
            await log.AppendAsync(AuditTestContext.Inference(i % 2 == 0 ? "acme" : "globex", i));
            context.Time.Advance(TimeSpan.FromMilliseconds(1));
        }
    }

    private static async Task<string> ExportAsync(AuditTestContext context, string? tenant, DateTimeOffset? from = null, DateTimeOffset? to = null)
    {
        using var output = new MemoryStream();
        await AuditExport.WriteAsync(context.Database, context.Key, tenant, from ?? DateTimeOffset.UnixEpoch, to ?? DateTimeOffset.UtcNow.AddMinutes(1), output);
        return Encoding.UTF8.GetString(output.ToArray());
    }

    private static Task<IReadOnlyList<AuditProblem>> CompareAsync(string later, string earlier) =>
        AuditExportComparison.CompareAsync(Stream(later), Stream(earlier));

    private static MemoryStream Stream(string text) => new(Encoding.UTF8.GetBytes(text));
}
