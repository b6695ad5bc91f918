using Sovereign.Metering.Pricing;

namespace Sovereign.Metering.Tests.Pricing;

internal static class PricingTestData
{
    public static readonly DateTimeOffset Jan1 = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
    public static readonly DateTimeOffset Mar1 = new(2025, 3, 1, 0, 0, 0, TimeSpan.Zero);

    public static ModelPrice Price(string model = "llama-3-8b", DateTimeOffset? from = null, decimal? input = 0.15m, decimal? output = 0.60m, decimal? compute = null, decimal? cached = null) => new()
    {
        Model = model,
        EffectiveFrom = from ?? Jan1,
        InputPerMillion = input,
        CachedInputPerMillion = cached,
        OutputPerMillion = output,
        PerComputeSecond = compute,
    };

    public static Plan Standard(params ModelPrice[] prices) => new()
    {
        Name = "standard",
        Currency = "EUR",
        Weight = 1,
        Priority = PriorityClass.Batch,
        Prices = prices.Length == 0 ? [Price(), Price("mistral-7b", input: null, output: null, compute: 0.0004m)] : prices,
    };

    public static Plan Pro() => new()
    {
        Name = "pro",
        Currency = "CHF",
        Weight = 4,
        Priority = PriorityClass.Interactive,
        Prices = [Price(input: 0.10m, output: 0.40m), Price(from: Mar1, input: 0.08m, output: 0.30m)],
    };
}
