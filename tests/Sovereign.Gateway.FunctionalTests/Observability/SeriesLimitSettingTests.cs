using System.Diagnostics.Metrics;
using System.Reflection;
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
/// Now the views take the bound, validated options.
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
