using System.Globalization;
using Sovereign.Cli.Output;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// Found closing a month as the operator's accountant, on a machine set to Bangkok time: <c>plans price
/// --effective-from 2031-01-01</c> (a new price from the first of the month, as invoices count it, in UTC days) was
/// read in the machine's time zone, so the price started at 2030-12-31T17:00:00Z and the last seven hours of December
/// were billed at January's price. Every other time the CLI and the API take (usage periods, audit ranges, key
/// expiry) is UTC unless it states an offset; so is a price's start now.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class CliTimeZoneTests(ConsoleFixture fixture)
{
    private static readonly Dictionary<string, string?> Bangkok = new() { ["TZ"] = "Asia/Bangkok" };

    [Theory]
    [InlineData("2031-01-01", "2031-01-01T00:00:00Z")]
    [InlineData("2031-02-01T00:00:00", "2031-02-01T00:00:00Z")]
    [InlineData("2031-03-01T00:00:00+07:00", "2031-02-28T17:00:00Z")] // an offset stated is kept
    public async Task APriceStartWithoutAnOffset_IsUtc_WhateverTheMachinesTimeZone(string given, string expected)
    {
        var plan = "tz" + Guid.NewGuid().ToString("N")[..8];
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}", new { currency = "EUR", weight = 1 });

        var (exit, _, stderr) = await CliProcess.RunAsync(Bangkok, "plans", "price", plan, "--model", ConsoleFixture.Model, "--input-per-million", "1", "--output-per-million", "2",
            "--effective-from", given, "--url", fixture.Url, "--admin-token", ConsoleFixture.AdminToken);
        Assert.True(exit == ExitCodes.Success, stderr);
        var (computeExit, _, computeErr) = await CliProcess.RunAsync(Bangkok, "plans", "compute-price", plan, "--pool", "th-local", "--per-compute-second", "0.001",
            "--effective-from", given, "--url", fixture.Url, "--admin-token", ConsoleFixture.AdminToken);
        Assert.True(computeExit == ExitCodes.Success, computeErr);

        var plans = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/plans", null);
        var stored = plans.GetProperty("data").EnumerateArray().Single(p => p.GetProperty("name").GetString() == plan);
        var instant = DateTimeOffset.Parse(expected, CultureInfo.InvariantCulture);
        Assert.Equal(instant, stored.GetProperty("prices")[0].GetProperty("effective_from").GetDateTimeOffset());
        Assert.Equal(instant, stored.GetProperty("compute_prices")[0].GetProperty("effective_from").GetDateTimeOffset());

        // Withdrawn by the same words, in the same time zone.
        var (withdrawExit, _, withdrawErr) = await CliProcess.RunAsync(Bangkok, "plans", "withdraw", plan, "--model", ConsoleFixture.Model, "--effective-from", given,
            "--url", fixture.Url, "--admin-token", ConsoleFixture.AdminToken);
        Assert.True(withdrawExit == ExitCodes.Success, withdrawErr);
    }
}
