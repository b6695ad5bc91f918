using System.ClientModel;
using OpenAI.Chat;

namespace Sovereign.Gateway.FunctionalTests.OpenAI;

/// <summary>
/// Every answer carries OpenAI's <c>x-request-id</c>, which the SDKs expose for support requests. There was none: a
/// tenant could not name a request it saw fail. A routed request's id is its audit and usage id.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class RequestIdTests(ServerFixture server)
{
    [Fact]
    public async Task Sdk_Answer_CarriesARequestId_ThatIsItsAuditId_AndEachRequestHasItsOwn()
    {
        var chat = server.OpenAI.GetChatClient(ServerFixture.Stories);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 1 };

        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var first = (await chat.CompleteChatAsync([new UserChatMessage("Hi")], options)).GetRawResponse();
        var second = (await chat.CompleteChatAsync([new UserChatMessage("Hi")], options)).GetRawResponse();
        var after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        Assert.True(first.Headers.TryGetValue("x-request-id", out var id), "no x-request-id");
        Assert.Matches("^req_[0-9a-f]{32}$", id);
        // Its first 12 hex digits are the time it was made (Unix ms): the ledger's request-id index grows at its end.
        var made = Convert.ToInt64(id![4..16], 16);
        Assert.InRange(made, before, after);
        Assert.True(first.Headers.TryGetValue("x-sovereign-audit-id", out var auditId));
        Assert.Equal(auditId, id);
        Assert.True(second.Headers.TryGetValue("x-request-id", out var secondId));
        Assert.NotEqual(id, secondId);
        Assert.True(string.CompareOrdinal(id[..16], secondId![..16]) <= 0, $"{id} was made before {secondId} but its time sorts after");
    }

    /// <summary>
    /// Ids sort as the times they were made, whatever their random part, so the usage ledger's unique request-id index
    /// takes each record at its end. They were 24 random hex digits, each record landing on a random page of the index.
    /// </summary>
    [Fact]
    public void New_IdsMadeLater_SortAfter_AndThoseOfOneMillisecondDiffer()
    {
        var at = new DateTimeOffset(2026, 12, 7, 7, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds();
        var ids = Enumerable.Range(0, 1_000).Select(i => Hosting.RequestIds.New(at + (i / 10))).ToList();

        Assert.All(ids, id => Assert.Matches("^req_[0-9a-f]{32}$", id));
        Assert.Equal(at, Convert.ToInt64(ids[0][4..16], 16));
        Assert.Equal(at + 99, Convert.ToInt64(ids[^1][4..16], 16));
        for (var i = 10; i < ids.Count; i++)
        {
            Assert.True(string.CompareOrdinal(ids[i - 10], ids[i]) < 0, $"{ids[i - 10]} (made earlier) does not sort before {ids[i]}");
        }

        Assert.Equal(ids.Count, ids.Distinct(StringComparer.Ordinal).Count());
        // 80 random bits: ids of the same millisecond share only the time's 12 digits, never the whole id.
        Assert.NotEqual(ids[0][16..], ids[1][16..]);
    }

    [Fact]
    public async Task Sdk_Error_CarriesTheRequestId()
    {
        var failure = await Assert.ThrowsAsync<ClientResultException>(() =>
            server.OpenAI.GetChatClient("no-such-model").CompleteChatAsync([new UserChatMessage("Hi")]));

        Assert.Equal(404, failure.Status);
        Assert.True(failure.GetRawResponse()!.Headers.TryGetValue("x-request-id", out var id), "no x-request-id");
        Assert.StartsWith("req_", id, StringComparison.Ordinal);
    }

    /// <summary>The id is the server's: a client's own x-request-id is not taken (it keys the usage ledger).</summary>
    [Theory]
    [InlineData("POST", "/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":1}""", 200)]
    [InlineData("POST", "/v1/chat/completions", """{"model":"stories","messages":[]}""", 400)]
    [InlineData("GET", "/v1/models", null, 200)]
    [InlineData("GET", "/v1/nowhere", null, 404)]
    [InlineData("POST", "/tokenize", """{"model":"stories","content":"hi"}""", 200)]
    public async Task RawHttp_EveryAnswer_HasTheServersOwnRequestId(string method, string path, string? json, int status)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        request.Headers.TryAddWithoutValidation("x-request-id", "req_chosen-by-the-client");
        if (json is not null)
        {
            request.Content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        }

        using var response = await server.Http.SendAsync(request);

        Assert.Equal(status, (int)response.StatusCode);
        var id = Assert.Single(response.Headers.GetValues("x-request-id"));
        Assert.Matches("^req_[0-9a-f]{32}$", id);
    }
}
