using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>What the database tests that start a real server process send it: admin calls, one tenant, one chat.</summary>
internal static class ServerProcessHttp
{
    /// <summary>Sends <paramref name="body"/> as JSON, asserts the status, and returns the answer's JSON (default when empty).</summary>
    public static async Task<JsonElement> SendAsync(HttpClient http, HttpMethod method, string path, object? body, int expected)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expected, $"{method} {path}: {(int)response.StatusCode} {text}");
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Tenant t1 on an EUR plan priced for <paramref name="model"/>, with a total budget of 10; returns its key.</summary>
    public static async Task<string> TenantWithBudgetAsync(HttpClient admin, string model)
    {
        await SendAsync(admin, HttpMethod.Put, "/admin/v1/plans/standard", new { currency = "EUR", weight = 1 }, 200);
        await SendAsync(admin, HttpMethod.Post, "/admin/v1/plans/standard/prices", new { model, input_per_million = 1000, output_per_million = 2000 }, 201);
        await SendAsync(admin, HttpMethod.Post, "/admin/v1/tenants", new { id = "t1", plan = "standard", policy = new { allowed_jurisdictions = new[] { "DE" } } }, 201);
        var key = (await SendAsync(admin, HttpMethod.Post, "/admin/v1/tenants/t1/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        await SendAsync(admin, HttpMethod.Put, "/admin/v1/tenants/t1/limits", new { budgets = new[] { new { period = "total", amount = 10m } } }, 200);
        return key;
    }

    /// <summary>A short greedy chat for the model served as <c>stories</c>.</summary>
    public static StringContent StoriesChat() => new(
        JsonSerializer.Serialize(new { model = "stories", messages = new[] { new { role = "user", content = "Once upon a time" } }, max_tokens = 4, temperature = 0 }),
        Encoding.UTF8, "application/json");
}
