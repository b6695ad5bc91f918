using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Storage;

namespace Sovereign.Gateway.FunctionalTests.Observability;

/// <summary>
/// The first-token stage marks that <c>cluster-streaming --marks</c> joins across processes (issue 9): a server started
/// with <c>SOVEREIGN_FIRST_TOKEN_MARKS</c> writes each stage of a streamed request, in order, under the request's id,
/// and nothing else (no tenant, key or content).
/// </summary>
public sealed class FirstTokenMarksTests : IDisposable
{
    private const string AdminToken = "first-token-marks-admin-token";
    private readonly string _root = Directory.CreateTempSubdirectory("sovereign-first-token-marks-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task StreamedChat_MarksOn_WritesEachStageInOrderUnderItsRequestId_AndNothingElse()
    {
        var marks = Path.Combine(_root, "server.marks");
        using var server = await ServeProcess.StartAsync(
            ["--model", $"{TestModels.Stories260K}=stories", "--threads", "1", "--ctx-size", "256", "--parallel", "2", "--data-dir", Path.Combine(_root, "data")],
            new Dictionary<string, string> { ["Sovereign__AdminToken"] = AdminToken, ["SOVEREIGN_FIRST_TOKEN_MARKS"] = marks });
        string requestId;
        string key;
        try
        {
            using var admin = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
            admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
            key = await ServerProcessHttp.TenantWithBudgetAsync(admin, "stories");
            using var tenant = new HttpClient { BaseAddress = admin.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
            tenant.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            using var body = new StringContent(
                JsonSerializer.Serialize(new { model = "stories", messages = new[] { new { role = "user", content = "Once upon a time" } }, max_tokens = 8, temperature = 0, stream = true }),
                Encoding.UTF8, "application/json");
            using var response = await tenant.PostAsync("/v1/chat/completions", body);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, text);
            Assert.Contains("\"content\":\"", text, StringComparison.Ordinal);
            requestId = response.Headers.GetValues("x-sovereign-audit-id").Single();
        }
        finally
        {
            // Its last marks are written as it stops.
            await ServeProcess.StopAsync(server);
        }

        var lines = File.ReadAllLines(marks);
        var stages = new Dictionary<string, long>();
        foreach (var line in lines)
        {
            // Exactly "id stage timestamp", the one request's id (the admin calls are not marked): no tenant, key or text.
            var parts = line.Split(' ');
            Assert.True(parts.Length == 3, line);
            Assert.Equal(requestId, parts[0]);
            Assert.True(stages.TryAdd(parts[1], long.Parse(parts[2], CultureInfo.InvariantCulture)), $"stage {parts[1]} marked twice");
        }

        // Authentication, the pipeline, the decision, measuring, admission, the work, the role chunk, the engine's first
        // text and its write, in that order; the decision's entry durable beside them.
        string[] order = ["auth", "start", "routed", "measured", "admitting", "admitted", "run", "event1", "content", "written"];
        Assert.Equal(order.Append("entry").Order(StringComparer.Ordinal), stages.Keys.Order(StringComparer.Ordinal));
        var times = order.Select(stage => stages[stage]).ToArray();
        Assert.Equal(times.Order(), times);
        Assert.DoesNotContain(key, File.ReadAllText(marks), StringComparison.Ordinal);
    }
}
