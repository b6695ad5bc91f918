using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>Registered models load and unload through the admin API without a restart; a tampered file is refused.</summary>
[Collection(ServerCollection.Name)]
public sealed class ModelLoadingTests(ServerFixture server)
{
    [Fact]
    public async Task ImportThenLoad_ServesTheModel_UnloadRemovesIt_ATamperedFileIsRefusedAndAudited()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync("models", "import", TestModels.Stories260K, "--id", "stories-registered",
            "--license", "MIT", "--origin-publisher", "Andrej Karpathy", "--origin-country", "US", "--language", "en", "--data-dir", server.DataDirectory);
        Assert.True(exit == 0, stderr);
        using var admin = server.AdminClient();

        var load = await admin.PostAsync("/admin/v1/models/stories-registered/load", null);
        Assert.Equal(200, (int)load.StatusCode);
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions",
            """{"model":"stories-registered","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":3}""");
        Assert.Equal(200, status);
        Assert.Equal(3, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(409, (int)(await admin.PostAsync("/admin/v1/models/stories-registered/load", null)).StatusCode);

        Assert.Equal(200, (int)(await admin.PostAsync("/admin/v1/models/stories-registered/unload", null)).StatusCode);
        (status, body, _) = await server.PostJsonAsync("/v1/chat/completions", """{"model":"stories-registered","messages":[{"role":"user","content":"hi"}]}""");

        // Registered, not loaded: 503 (SDKs retry; the operator may load it again), not the 404 of a model nobody registered.
        Assert.Equal(503, status);
        Assert.Equal("no_compliant_capacity", body.GetProperty("error").GetProperty("code").GetString());

        // Flip one byte of the stored blob: the next load re-hashes the file and refuses it.
        var listed = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/models")).RootElement.GetProperty("data").EnumerateArray()
            .Single(m => m.GetProperty("id").GetString() == "stories-registered");
        var digest = listed.GetProperty("digest").GetString()!;
        var blob = Directory.EnumerateFiles(Path.Combine(server.DataDirectory, "models"), "*", SearchOption.AllDirectories)
            .Single(f => f.Contains(digest.Replace("sha256:", "", StringComparison.Ordinal), StringComparison.Ordinal) && f.EndsWith(".gguf", StringComparison.Ordinal));
        File.SetAttributes(blob, FileAttributes.Normal);
        var bytes = await File.ReadAllBytesAsync(blob);
        bytes[^10] ^= 0xFF;
        await File.WriteAllBytesAsync(blob, bytes);

        var refused = await admin.PostAsync("/admin/v1/models/stories-registered/load", null);
        Assert.Equal(409, (int)refused.StatusCode);
        Assert.Equal("digest_mismatch", JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        var audit = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/audit")).RootElement.GetProperty("data").EnumerateArray();
        Assert.Contains(audit, e => e.GetProperty("action").GetString() == "model.load_refused"
            && e.GetProperty("details").GetProperty("model").GetString() == "stories-registered");

        Assert.Equal(404, (int)(await admin.PostAsync("/admin/v1/models/not-registered/load", null)).StatusCode);
    }

    /// <summary>
    /// <c>models rm</c> of a model the running server had loaded deleted its registration and file: the server served on
    /// until a restart, which then failed on a configuration naming it. It is refused (exit 1, naming the model and the
    /// unload) while loaded, and removes it once unloaded.
    /// </summary>
    [Fact]
    public async Task Remove_OfALoadedModel_IsRefusedUntilUnloaded()
    {
        const string Id = "Org/stories-held";
        var (exit, _, stderr) = await CliProcess.RunAsync("models", "import", TestModels.Stories260K, "--id", Id,
            "--license", "MIT", "--origin-publisher", "Andrej Karpathy", "--origin-country", "US", "--data-dir", server.DataDirectory);
        Assert.True(exit == 0, stderr);
        (exit, _, stderr) = await CliProcess.RunAsync("models", "load", Id, "--url", server.BaseAddress.ToString(), "--data-dir", server.DataDirectory);
        Assert.True(exit == 0, stderr);

        (exit, _, stderr) = await CliProcess.RunAsync("models", "rm", Id, "--data-dir", server.DataDirectory);
        Assert.Equal(1, exit);
        Assert.Contains($"model '{Id}' is loaded by a running server; unload it first (sovereign models unload {Id})", stderr, StringComparison.Ordinal);
        (exit, _, stderr) = await CliProcess.RunAsync("models", "show", Id, "--data-dir", server.DataDirectory);
        Assert.True(exit == 0, stderr);
        var (status, _, _) = await server.PostJsonAsync("/v1/chat/completions", $$"""{"model":"{{Id}}","messages":[{"role":"user","content":"hi"}],"max_tokens":2}""");
        Assert.Equal(200, status);

        (exit, _, stderr) = await CliProcess.RunAsync("models", "unload", Id, "--url", server.BaseAddress.ToString(), "--data-dir", server.DataDirectory);
        Assert.True(exit == 0, stderr);
        (exit, var stdout, stderr) = await CliProcess.RunAsync("models", "rm", Id, "--data-dir", server.DataDirectory);
        Assert.True(exit == 0, stderr);
        Assert.Contains($"Removed {Id}", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AModelIdWithASlash_LoadsAndUnloads_ThroughTheCli()
    {
        // Hugging Face style names ("Org/Name") are valid ids; a '/' travels as %2F in the admin path.
        const string Id = "Org/Stories-Slash";
        var (exit, _, stderr) = await CliProcess.RunAsync("models", "import", TestModels.Stories260K, "--id", Id,
            "--license", "MIT", "--origin-publisher", "Andrej Karpathy", "--origin-country", "US", "--data-dir", server.DataDirectory);
        Assert.True(exit == 0, stderr);
        string[] Admin(string verb) => ["models", verb, Id, "--url", server.BaseAddress.ToString(), "--data-dir", server.DataDirectory];

        (exit, _, stderr) = await CliProcess.RunAsync(Admin("load"));
        Assert.True(exit == 0, stderr);
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions",
            $$"""{"model":"{{Id}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":2}""");
        Assert.Equal(200, status);
        Assert.Equal(Id, body.GetProperty("model").GetString());

        (exit, _, stderr) = await CliProcess.RunAsync(Admin("unload"));
        Assert.True(exit == 0, stderr);
        (status, _, _) = await server.PostJsonAsync("/v1/chat/completions", $$"""{"model":"{{Id}}","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(503, status);
    }
}
