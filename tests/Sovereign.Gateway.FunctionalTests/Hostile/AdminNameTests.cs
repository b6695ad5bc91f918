using System.Net.Http.Json;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// Tenant and key names are display text: bounded, with something visible, and without control characters or
/// bidirectional overrides. They used to be stored as sent (a 100,000-character tenant name, a key name with an ESC
/// sequence and a NUL), and the CLI's tables wrote them to the operator's terminal as is.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class AdminNameTests(ConsoleFixture fixture)
{
    public static TheoryData<string> BadNames => new()
    {
        "",
        "   ",
        new string('a', 201),
        "red\u001b[31malert",
        "nul\u0000byte",
        "two\nlines",
        "tab\there",
        "bell\u0007",
        "del\u007f",
        "c1\u009b31m",
        "evil\u202Egnp.exe",
        "isolate\u2067x\u2069",
        "\u200B",
        "\u200B\u2060 \uFEFF",
    };

    [Theory]
    [MemberData(nameof(BadNames))]
    public async Task BadName_Is400NamingIt_OnTenantCreateUpdateAndKeyCreate_AndNothingChanges(string name)
    {
        using var create = await fixture.Admin.PostAsJsonAsync("/admin/v1/tenants", new { id = "named-bad", name, policy = new { allowed_jurisdictions = new[] { "TH" } } });
        await AssertNameRefusedAsync(create);
        using var missing = await fixture.Admin.GetAsync("/admin/v1/tenants/named-bad");
        Assert.Equal(404, (int)missing.StatusCode);

        using var update = await fixture.Admin.PatchAsJsonAsync("/admin/v1/tenants/th-hospital", new { name });
        await AssertNameRefusedAsync(update);
        var tenant = await fixture.Admin.GetFromJsonAsync<JsonElement>("/admin/v1/tenants/th-hospital");
        Assert.Equal("th-hospital", tenant.GetProperty("name").GetString());

        var keysBefore = (await fixture.Admin.GetFromJsonAsync<JsonElement>("/admin/v1/tenants/th-hospital/keys")).GetProperty("data").GetArrayLength();
        using var key = await fixture.Admin.PostAsJsonAsync("/admin/v1/tenants/th-hospital/keys", new { name });
        await AssertNameRefusedAsync(key);
        Assert.Equal(keysBefore, (await fixture.Admin.GetFromJsonAsync<JsonElement>("/admin/v1/tenants/th-hospital/keys")).GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task NamesInAnyScript_UpTo200Characters_AreKept()
    {
        var name = "โรงพยาบาล Ünïcode 病院 " + new string('x', 200 - 21);
        Assert.Equal(200, name.Length);

        using var create = await fixture.Admin.PostAsJsonAsync("/admin/v1/tenants", new { id = "named-ok", name, policy = new { allowed_jurisdictions = new[] { "TH" } } });
        Assert.True((int)create.StatusCode == 201, await create.Content.ReadAsStringAsync());
        Assert.Equal(name, (await create.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("name").GetString());

        using var key = await fixture.Admin.PostAsJsonAsync("/admin/v1/tenants/named-ok/keys", new { name = "ключ 鍵" });
        Assert.True((int)key.StatusCode == 201, await key.Content.ReadAsStringAsync());
        Assert.Equal("ключ 鍵", (await key.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetProperty("name").GetString());
    }

    private static async Task AssertNameRefusedAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, $"{(int)response.StatusCode} {text}");
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("name", error.GetProperty("param").GetString());
        Assert.Equal("invalid_value", error.GetProperty("code").GetString());
        Assert.DoesNotContain('\u001b', error.GetProperty("message").GetString()!);
    }
}
