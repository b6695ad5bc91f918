using System.IO.Compression;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// HTTP-level oddities get a precise OpenAI error. Found: a gzip body was parsed as JSON ("'0x1F' is an invalid start
/// of a value"), a body labelled <c>Content-Encoding: br</c> but sent plain was served, and an unknown model on
/// <c>/admin/v1/models/{id}/languages</c> answered the code <c>"chat model_not_found"</c> (with a space).
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class HttpLevelTests(ConsoleFixture fixture)
{
    private static readonly string Chat = JsonSerializer.Serialize(new { model = ConsoleFixture.Model, messages = new[] { new { role = "user", content = "Hi" } }, max_tokens = 2 });

    [Theory]
    [InlineData("gzip", true)]
    [InlineData("br", false)]
    [InlineData("deflate, gzip", false)]
    public async Task CompressedBody_Is415NamingTheCoding(string coding, bool compress)
    {
        var bytes = Encoding.UTF8.GetBytes(Chat);
        if (compress)
        {
            using var buffer = new MemoryStream();
            using (var gzip = new GZipStream(buffer, CompressionLevel.Fastest))
            {
                gzip.Write(bytes);
            }

            bytes = buffer.ToArray();
        }

        using var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        foreach (var part in coding.Split(", "))
        {
            content.Headers.ContentEncoding.Add(part);
        }

        using var client = new HttpClient { BaseAddress = fixture.Address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", fixture.HospitalKey);
        using var response = await client.PostAsync("/v1/chat/completions", content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 415, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("unsupported_media_type", error.GetProperty("code").GetString());
        Assert.Contains(coding.Split(", ")[0], error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task IdentityEncoding_IsServed()
    {
        using var content = new StringContent(Chat, Encoding.UTF8, "application/json");
        content.Headers.ContentEncoding.Add("identity");
        using var client = new HttpClient { BaseAddress = fixture.Address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", fixture.HospitalKey);
        using var response = await client.PostAsync("/v1/chat/completions", content);
        Assert.Equal(200, (int)response.StatusCode);
    }

    /// <summary>Azure OpenAI clients send the key as 'api-key' (no Authorization header); it was a 401 "no API key".</summary>
    [Fact]
    public async Task AzureStyleApiKeyHeader_Authenticates()
    {
        using var client = new HttpClient { BaseAddress = fixture.Address };
        using var ok = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions?api-version=2024-10-21") { Content = new StringContent(Chat, Encoding.UTF8, "application/json") };
        ok.Headers.Add("api-key", fixture.HospitalKey);
        using var served = await client.SendAsync(ok);
        Assert.Equal(200, (int)served.StatusCode);

        using var wrong = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Chat, Encoding.UTF8, "application/json") };
        wrong.Headers.Add("api-key", fixture.HospitalKey + "x");
        using var refused = await client.SendAsync(wrong);
        Assert.Equal(401, (int)refused.StatusCode);
    }

    [Fact]
    public async Task UnknownModelOnTheAdminApi_Is404ModelNotFound()
    {
        using var response = await fixture.Admin.GetAsync("/admin/v1/models/no-such-model/languages");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 404, text);
        Assert.Equal("model_not_found", JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("code").GetString());
    }
}
