using System.Diagnostics.Metrics;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.Observability;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.Observability;

/// <summary>
/// <c>Sovereign:Metering:SpendSeriesLimit</c> and <c>GenAiSeriesLimit</c> are validated as options, but the metrics
/// views read the raw settings again at build time, each its own way (the spend limit with <c>GetValue</c>, the GenAI
/// one with <c>int.TryParse</c>): a value the options bound and validated could still give the views another limit.
/// Now the views take the values as the configuration binder binds them (<c>SovereignGateway.SeriesSettings</c>),
/// without resolving the validated options while the app is built: that (commit 6865ad7, reverted) threw
/// <c>OptionsValidationException</c> out of the build for any other bad setting (UnknownSettingTests, ServeFlagsTests,
/// AuditRetentionTests), which <see cref="Serve_AnotherBadSetting_StillStopsTheStartNamingIt"/> pins.
/// </summary>
public sealed class SeriesLimitSettingTests
{
    /// <summary>A value that is not a number stops serve naming the setting (exit 2, no stack).</summary>
    [Theory]
    [InlineData("SpendSeriesLimit")]
    [InlineData("GenAiSeriesLimit")]
    public async Task Serve_SeriesLimitNotANumber_StopsTheStartNamingTheSetting(string setting)
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-series-limit-").FullName;
        try
        {
            var (exit, stdout, stderr) = await CliProcess.RunAsync(
                new Dictionary<string, string?> { ["Sovereign__Jurisdiction"] = "DE", ["Sovereign__BuiltInEmbeddings"] = "false", [$"Sovereign__Metering__{setting}"] = "abc" },
                "serve", "--urls", "http://127.0.0.1:0", "--data-dir", directory);

            Assert.True(exit == 2, $"{exit}: {stdout}{stderr}");
            Assert.Contains($"Sovereign:Metering:{setting}", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// A value the options bind (hexadecimal, as .NET's configuration binder reads an int) is the limit both views use:
    /// the GenAI view's own parse refused it and kept 20,000 while the validated options said 30,000.
    /// </summary>
    [Fact]
    public async Task Serve_TheViewsUseTheBoundLimits()
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-series-limit-").FullName;
        try
        {
            await using var app = ServeCommand.Build(new ServeSettings
            {
                Urls = "http://127.0.0.1:0",
                DataDirectory = directory,
                Overrides = new Dictionary<string, string?>
                {
                    ["Sovereign:Jurisdiction"] = "DE",
                    ["Sovereign:BuiltInEmbeddings"] = "false",
                    ["Sovereign:Metering:SpendSeriesLimit"] = "0x9C40",
                    ["Sovereign:Metering:GenAiSeriesLimit"] = "0x7530",
                },
            }, []);
            await app.StartAsync();
            try
            {
                var provider = app.Services.GetRequiredService<MeterProvider>();
                var views = Views(provider);
                using var engine = new Meter(EngineMetrics.MeterName);
                using var genAi = new Meter(GenAiMetrics.MeterName);
                int? Limit(Instrument instrument) => views.Select(v => v(instrument)).OfType<MetricStreamConfiguration>().FirstOrDefault()?.CardinalityLimit;

                Assert.Equal(40_000, Limit(engine.CreateCounter<long>(RequestMetering.SpendMetric)));
                Assert.Equal(30_000, Limit(genAi.CreateHistogram<long>("gen_ai.client.token.usage")));

                // The options (validated at start) say the same: one reading of the setting.
                var metering = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Sovereign.Gateway.Hosting.SovereignOptions>>().Value.Metering;
                Assert.Equal((40_000, 30_000), (metering.SpendSeriesLimit, metering.GenAiSeriesLimit));
            }
            finally
            {
                await app.StopAsync();
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>
    /// A bad setting elsewhere still stops the start with exit 2 and the validator's message naming it, no stack: the
    /// reverted mend resolved the validated options while the meter provider was built and threw from the build.
    /// </summary>
    [Fact]
    public async Task Serve_AnotherBadSetting_StillStopsTheStartNamingIt()
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-series-limit-").FullName;
        try
        {
            var (exit, stdout, stderr) = await CliProcess.RunAsync(
                new Dictionary<string, string?>
                {
                    ["Sovereign__Jurisdiction"] = "DE",
                    ["Sovereign__BuiltInEmbeddings"] = "false",
                    ["Sovereign__Metering__GenAiSeriesLimit"] = "0x7530",
                    ["Sovereign__Metering__SpendSeriesLimit"] = "1",
                },
                "serve", "--urls", "http://127.0.0.1:0", "--data-dir", directory);

            Assert.True(exit == 2, $"{exit}: {stdout}{stderr}");
            Assert.Contains("Sovereign:Metering:SpendSeriesLimit", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>The views' reading of the settings: the binder's (hexadecimal included); a value it or the validator refuses gives the default.</summary>
    [Theory]
    [InlineData("0x7530", "false", 30_000, false)]
    [InlineData("30000", "False", 30_000, false)]
    [InlineData("abc", "true", 20_000, true)]
    [InlineData("1", "true", 20_000, true)]
    [InlineData("20000000", "nope", 20_000, true)]
    public void SeriesSettings_BindAsTheOptionsDo(string limit, string label, int expectedLimit, bool expectedLabel)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Sovereign:Metering:GenAiSeriesLimit"] = limit,
            ["Sovereign:Metering:GenAiTenantLabel"] = label,
        }).Build();

        var settings = Sovereign.Gateway.Hosting.SovereignGateway.SeriesSettings(configuration);

        Assert.Equal((expectedLimit, expectedLabel, Sovereign.Gateway.Hosting.MeteringOptions.DefaultSpendSeriesLimit),
            (settings.GenAiSeriesLimit, settings.GenAiTenantLabel, settings.SpendSeriesLimit));
    }

    /// <summary>The views OpenTelemetry's provider holds (an internal member: no public API lists them).</summary>
    private static IEnumerable<Func<Instrument, MetricStreamConfiguration?>> Views(object provider)
    {
        const BindingFlags Flags = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;
        for (var type = provider.GetType(); type is not null; type = type.BaseType)
        {
            foreach (var field in type.GetFields(Flags | BindingFlags.DeclaredOnly))
            {
                if (field.GetValue(provider) is IEnumerable<Func<Instrument, MetricStreamConfiguration?>> views)
                {
                    return views;
                }
            }

            foreach (var property in type.GetProperties(Flags | BindingFlags.DeclaredOnly))
            {
                if (property.GetIndexParameters().Length == 0 && property.GetValue(provider) is IEnumerable<Func<Instrument, MetricStreamConfiguration?>> views)
                {
                    return views;
                }
            }
        }

        throw new InvalidOperationException($"{provider.GetType()} holds no views (OpenTelemetry changed its internals).");
    }
}
