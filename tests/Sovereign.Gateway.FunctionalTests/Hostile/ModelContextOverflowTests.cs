using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// A model's context × parallel is the KV cache's cells, an int: <c>sovereign serve --parallel 256 --ctx-size 1073741824</c>
/// overflowed while the model loaded and stopped the start as "a defect in sovereign" (exit 70). It is a setting that
/// does not hold, named, as every other is.
/// </summary>
public sealed class ModelContextOverflowTests
{
    [Fact]
    public async Task AConfiguredModelsContextTimesParallelPastAnInt_StopsTheStartNamingTheSetting()
    {
        var message = await StartFailure.WithSovereignSectionAsync("{}",
            [new ModelOptions { Id = "m", Path = TestModels.Stories260K, Parallel = 256, ContextLength = 1 << 30 }]);

        Assert.Contains("Sovereign:Models:0:ContextLength", message, StringComparison.Ordinal);
        Assert.Contains("2147483647", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheTestModelsContextTimesParallelPastAnInt_StopsTheStartNamingTheSetting()
    {
        var message = await StartFailure.WithSovereignSectionAsync("""{"TestModel":{"Parallel":256,"ContextLength":1073741824}}""", []);

        Assert.Contains("Sovereign:TestModel:ContextLength", message, StringComparison.Ordinal);
    }
}
