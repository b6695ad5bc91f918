using System.ClientModel;
using System.CommandLine;
using OpenAI;

namespace Sovereign.Cli.Commands;

/// <summary>The <c>--url</c> and <c>--api-key</c> options of commands that talk to a running server.</summary>
internal sealed class ServerConnection
{
    public Option<string> Url { get; } = new("--url")
    {
        Description = "The server's base URL (env SOVEREIGN_URL).",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("SOVEREIGN_URL") ?? ServeCommand.DefaultUrls,
    };

    public Option<string?> ApiKey { get; } = new("--api-key")
    {
        Description = "Bearer key for the server (env SOVEREIGN_API_KEY).",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("SOVEREIGN_API_KEY"),
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Url);
        command.Options.Add(ApiKey);
    }

    /// <summary>An official OpenAI client pointed at our /v1.</summary>
    public OpenAIClient CreateClient(ParseResult result)
    {
        var baseUrl = result.GetValue(Url)!.TrimEnd('/');
        if (!Uri.TryCreate(baseUrl + "/v1", UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException($"--url '{baseUrl}' is not an http(s) URL.");
        }

        // Local servers without keys still need a non-empty credential for the SDK.
        var key = result.GetValue(ApiKey);
        return new OpenAIClient(new ApiKeyCredential(string.IsNullOrEmpty(key) ? "sovereign-local" : key), new OpenAIClientOptions { Endpoint = endpoint });
    }
}
