using Sovereign.Cli.Output;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// A whole number too large for its flag. Found by hand: <c>audit verify --max-uncovered-age 99999999999999</c> said
/// "'99999999999999' is not a whole number", which it is; the line now says it is out of range and what the range is.
/// Checked before any connection or database.
/// </summary>
public sealed class CliNumberRangeTests
{
    [Theory]
    [InlineData("--max-uncovered-age: '99999999999999' is out of range: a whole number from -2147483648 to 2147483647.", "audit", "verify", "--max-uncovered-age", "99999999999999")]
    [InlineData("--weight: '-99999999999' is out of range: a whole number from -2147483648 to 2147483647.", "plans", "set", "gold", "--currency", "EUR", "--weight", "-99999999999", "--url", "http://127.0.0.1:9", "--admin-token", "unused")]
    [InlineData("--seed: '99999999999999999999' is out of range: a whole number from 0 to 18446744073709551615.", "models", "synth", "-o", "never.gguf", "--seed", "99999999999999999999")]
    [InlineData("--weight: 'abc' is not a whole number.", "plans", "set", "gold", "--currency", "EUR", "--weight", "abc", "--url", "http://127.0.0.1:9", "--admin-token", "unused")]
    public async Task AWholeNumberOutOfItsFlagsRange_IsAUsageErrorSayingTheRange(string message, params string[] args)
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(args);

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
    }
}
