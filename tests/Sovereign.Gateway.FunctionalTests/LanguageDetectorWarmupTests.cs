using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// The language detector loads in the background once the server has started, when every request's language is
/// detected: loaded on first use, it held the first inference request after each start for about 2 s.
/// </summary>
public sealed class LanguageDetectorWarmupTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AfterStart_TheDetectorIsLoadedWithoutARequest_OnlyWhenEveryRequestsLanguageIsDetected(bool detectEveryRequest)
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-warmup-").FullName;
        try
        {
            await using var app = ServeCommand.Build(new ServeSettings
            {
                Models = [new ModelOptions { Id = "m", Path = TestModels.Stories260K, ContextLength = 128, Parallel = 1, Threads = 1 }],
                Urls = "http://127.0.0.1:0",
                DataDirectory = directory,
                Overrides = new Dictionary<string, string?>
                {
                    ["Sovereign:BuiltInEmbeddings"] = "false",
                    ["Sovereign:DetectLanguageOfEveryRequest"] = detectEveryRequest ? "true" : "false",
                },
            }, []);
            await app.StartAsync();

            var warmup = app.Services.GetServices<IHostedService>().OfType<LanguageDetectorWarmup>().Single();
            await warmup.ExecuteTask!;
            Assert.Equal(detectEveryRequest, app.Services.GetRequiredService<LanguageRouting>().IsLoaded);
            await app.StopAsync();
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(directory, recursive: true);
        }
    }
}
