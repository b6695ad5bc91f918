namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>Sovereign:Metering:AggregateFoldIntervalMs</c> and <c>AggregateFoldRecords</c> (session 55): how often the usage
/// ledger folds the records committed since its last fold into the period aggregates. A value out of range stops the
/// start naming the setting, as every other setting does.
/// </summary>
public sealed class AggregateFoldSettingTests
{
    [Theory]
    [InlineData("AggregateFoldIntervalMs", "0", "between 1 and 86400000; got 0")]
    [InlineData("AggregateFoldIntervalMs", "-250", "between 1 and 86400000; got -250")]
    [InlineData("AggregateFoldRecords", "0", "between 1 and 10000000; got 0")]
    public async Task Serve_FoldSettingOutOfRange_StopsTheStartNamingIt(string setting, string value, string rule)
    {
        var message = await StartFailure.WithSovereignSectionAsync("{\"Metering\":{\"" + setting + "\":" + value + "}}");

        Assert.Contains($"Sovereign:Metering:{setting} must be {rule}.", message, StringComparison.Ordinal);
    }
}
