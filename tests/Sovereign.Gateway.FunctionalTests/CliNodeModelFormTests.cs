using Sovereign.Cli.Output;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>nodes add --model</c> takes ID or ID=UPSTREAM_NAME. Found by an explorer: <c>--model '=X'</c> reached the server
/// as a model without an id and came back as "models[0].id is required", naming neither the flag nor the value. Now a
/// usage error before any connection (the URL here answers nothing).
/// </summary>
public sealed class CliNodeModelFormTests
{
    [Theory]
    [InlineData("--model '=X' is not ID or ID=UPSTREAM_NAME: the id before '=' is empty.", "--model", "=X")]
    [InlineData("--model 'x=' is not ID or ID=UPSTREAM_NAME: the upstream name after '=' is empty.", "--model", "x=")]
    [InlineData("--embedding-model '=e' is not ID or ID=UPSTREAM_NAME: the id before '=' is empty.", "--embedding-model", "=e")]
    public async Task AModelWithAnEmptySide_IsAUsageErrorNamingTheValueAndTheForm(string message, string flag, string value)
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(
            "nodes", "add", "n1", "--jurisdiction", "EU", "--base-url", "http://127.0.0.1:9", flag, value, "--url", "http://127.0.0.1:9", "--admin-token", "unused");

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
    }
}
