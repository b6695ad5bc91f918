using System.Text;
using Sovereign.Cli.Commands;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// The line <c>sovereign audit verify-export</c> prints about what a file holds. An export made without <c>--from</c>
/// starts at 0 (the Unix epoch); the auditor read "written from 1970-01-01" for it, as if the range had a start.
/// </summary>
public sealed class AuditExportScopeLineTests
{
    [Theory]
    [InlineData(0L, "The file holds every tenant's entries since the log's start up to (not including) 2026-03-01T00:00:00.000Z, sequences 1..4;")]
    [InlineData(1767225600000L, "The file holds every tenant's entries written from 2026-01-01T00:00:00.000Z up to (not including) 2026-03-01T00:00:00.000Z, sequences 1..4;")]
    public async Task ScopeLine_SaysTheLogsStart_ForAnExportWithoutFrom_AndTheTimeOtherwise(long fromMs, string expected)
    {
        var header = $$"""{"type":"header","from":{{fromMs}},"to":1772323200000,"firstSequence":1,"lastSequence":4,"createdAt":1772323200000}""";
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(header + "\n"));

        var line = await AuditCommand.ScopeLineAsync(stream, CancellationToken.None);

        Assert.NotNull(line);
        Assert.StartsWith(expected, line, StringComparison.Ordinal);
        Assert.DoesNotContain("1970", line, StringComparison.Ordinal);
    }
}
