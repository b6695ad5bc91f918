using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;

namespace Sovereign.Gateway.Metering;

/// <summary>What admission decided for one request: its price and the reservation made for it.</summary>
public sealed class MeterTicket
{
    internal MeterTicket(EffectivePrice? price, string currency, long admittedTokens, int weight, Inference.Scheduling.PriorityClass priority, bool reservedWithGrain)
    {
        Price = price;
        Currency = currency;
        AdmittedTokens = admittedTokens;
        Weight = weight;
        Priority = priority;
        ReservedWithGrain = reservedWithGrain;
    }

    /// <summary>The price in force when the request arrived; null when the plan prices nothing for the model (free).</summary>
    public EffectivePrice? Price { get; }

    /// <summary>The plan's currency.</summary>
    public string Currency { get; }

    /// <summary>Tokens counted against the rate limit at admission (prompt + the most it may generate).</summary>
    public long AdmittedTokens { get; }

    /// <summary>The plan's fair-share weight.</summary>
    public int Weight { get; }

    /// <summary>The plan's priority class.</summary>
    public Inference.Scheduling.PriorityClass Priority { get; }

    internal bool ReservedWithGrain { get; }
}

/// <summary>
/// Meters every request exactly: before any work, the tenant's grain applies its rate limits and reserves the most
/// the request can cost; when it ends, the usage record is committed to the durable ledger (before the client gets
/// its last byte) and then the grain settles the actual cost. Refused requests are recorded too.
/// </summary>
public sealed class RequestMetering
{
    /// <summary>Upper bound of compute-seconds reserved when a price charges them.</summary>
    public const decimal MaxComputeSecondsPerRequest = 600m;

    private readonly IGrainFactory _grains;
    private readonly UsageLedger _ledger;
    private readonly PriceBookProvider _prices;
    private readonly TimeProvider _time;
    private readonly Counter<double> _spend;
    private readonly ConcurrentDictionary<string, decimal> _remaining = new(StringComparer.Ordinal);
    private readonly LanguageTaxCache _languageTax;
    private readonly Dictionary<string, IReadOnlySet<string>> _characterEquivalent;

    /// <summary>Creates the service and its spend and remaining-budget metrics.</summary>
    public RequestMetering(IGrainFactory grains, UsageLedger ledger, PriceBookProvider prices, LanguageTaxCache languageTax, Microsoft.Extensions.Options.IOptions<Hosting.SovereignOptions> options, TimeProvider time, IMeterFactory meters)
    {
        _languageTax = languageTax;
        _characterEquivalent = options.Value.Metering.CharacterEquivalentLanguages.ToDictionary(
            p => p.Key, p => (IReadOnlySet<string>)p.Value.ToHashSet(StringComparer.OrdinalIgnoreCase), StringComparer.Ordinal);
        _grains = grains;
        _ledger = ledger;
        _prices = prices;
        _time = time;
        var meter = meters.Create(EngineMetrics.MeterName);
        _spend = meter.CreateCounter<double>("sovereign.spend", "{currency}", "Settled spend, by tenant and currency.");
        meter.CreateObservableGauge("sovereign.budget_remaining", ObserveRemaining, "{currency}", "Remaining budget after the last settlement, by tenant.");
    }

    /// <summary>Admits a request or throws the 429 to answer with (rate limit or budget), with OpenAI's headers.</summary>
    public async Task<MeterTicket> AdmitAsync(HttpContext context, RoutedRequest routed, long promptTokens, long maxTokens)
    {
        var caller = routed.Caller;
        var book = _prices.Current;
        var plan = book.FindPlan(caller.Plan);
        var weight = plan?.Weight ?? 1;
        var priority = (Inference.Scheduling.PriorityClass)(int)(plan?.Priority ?? PriorityClass.Interactive);
        book.TryPriceFor(caller.Plan, routed.Model, _time.GetUtcNow(), out var price);
        var currency = price?.Currency ?? plan?.Currency ?? "USD";
        var tokens = promptTokens + maxTokens;
        if (caller.IsAnonymous)
        {
            return new MeterTicket(price, currency, tokens, weight, priority, false);
        }

        var maxCost = price is null ? 0m : CostCalculator.MaxCost(price, promptTokens, maxTokens, MaxComputeSecondsPerRequest);
        var result = await _grains.GetGrain<ITenantGrain>(caller.TenantId).AdmitAsync(new AdmissionRequest(routed.RequestId, caller.KeyId, tokens, maxCost, currency));
        foreach (var (name, value) in result.Headers)
        {
            context.Response.Headers[name] = value;
        }

        if (!result.Allowed)
        {
            await RecordAsync(routed, new MeterTicket(null, currency, 0, weight, priority, false), 0, 0, null, UsageOutcome.Refused, result.Code);
            var retryAfter = result.Headers.FirstOrDefault(h => h.Key == "Retry-After").Value is { } seconds && int.TryParse(seconds, out var s) ? TimeSpan.FromSeconds(s) : (TimeSpan?)null;
            throw new OpenAIException(StatusCodes.Status429TooManyRequests, result.Message ?? "Too many requests.",
                result.Code == "budget_exceeded" ? "insufficient_quota" : "requests", null, result.Code, retryAfter);
        }

        return new MeterTicket(price, currency, tokens, weight, priority, true);
    }

    /// <summary>Commits the usage record (durably), then settles the reservation at the actual cost.</summary>
    public async Task FinishAsync(RoutedRequest routed, MeterTicket ticket, int promptTokens, int completionTokens, GenerationResult? timing, UsageOutcome outcome)
    {
        var computeSeconds = (decimal)(timing?.ComputeSeconds ?? 0);
        var (billedPrompt, billedCompletion) = BilledTokens(routed, promptTokens, completionTokens);
        var cost = ticket.Price is null ? 0m : CostCalculator.Cost(ticket.Price, billedPrompt, billedCompletion, Math.Round(computeSeconds, 6));
        await RecordAsync(routed, ticket, promptTokens, completionTokens, timing, outcome, null, cost);
        if (ticket.ReservedWithGrain)
        {
            var remaining = await _grains.GetGrain<ITenantGrain>(routed.Caller.TenantId)
                .SettleAsync(new SettlementRequest(routed.RequestId, routed.Caller.KeyId, cost, ticket.AdmittedTokens, promptTokens + completionTokens));
            if (remaining is { } left)
            {
                _remaining[routed.Caller.TenantId + "\u0001" + ticket.Currency] = left;
            }
        }

        if (cost > 0)
        {
            _spend.Add((double)cost, new KeyValuePair<string, object?>("tenant", routed.Caller.TenantId), new KeyValuePair<string, object?>("currency", ticket.Currency));
        }
    }

    /// <summary>
    /// The tokens a request is billed for: as counted, unless its plan bills its language per character-equivalent,
    /// in which case as many as the same text would take in English on this model (never more than counted).
    /// </summary>
    private (int Prompt, int Completion) BilledTokens(RoutedRequest routed, int promptTokens, int completionTokens)
    {
        if (routed.Language is not { } language
            || !_characterEquivalent.TryGetValue(routed.Caller.Plan, out var languages)
            || !languages.Contains(language)
            || _languageTax.RatioToEnglish(routed.Model, language) is not { } ratio
            || ratio <= 1.0)
        {
            return (promptTokens, completionTokens);
        }

        return ((int)Math.Ceiling(promptTokens / ratio), (int)Math.Ceiling(completionTokens / ratio));
    }

    /// <summary>Records a request refused before admission (e.g. by residency), at no cost.</summary>
    public Task RecordRefusalAsync(Caller caller, string requestId, string model, string node, string jurisdiction, string? code) =>
        _ledger.AppendAsync(new UsageRecord
        {
            RequestId = requestId,
            Timestamp = _time.GetUtcNow(),
            Tenant = caller.TenantId,
            KeyId = caller.KeyId ?? "-",
            Model = model,
            Node = node,
            Jurisdiction = jurisdiction,
            Outcome = UsageOutcome.Refused,
            RefusalCode = code,
            Currency = _prices.Current.FindPlan(caller.Plan)?.Currency ?? "USD",
        });

    private Task RecordAsync(RoutedRequest routed, MeterTicket? ticket, int promptTokens, int completionTokens, GenerationResult? timing, UsageOutcome outcome, string? refusalCode, decimal cost = 0m) =>
        _ledger.AppendAsync(new UsageRecord
        {
            RequestId = routed.RequestId,
            Timestamp = routed.ArrivedAt,
            Tenant = routed.Caller.TenantId,
            KeyId = routed.Caller.KeyId ?? "-",
            Model = routed.Model,
            Node = routed.NodeId,
            Jurisdiction = routed.Jurisdiction,
            Language = routed.Language,
            PromptTokens = promptTokens,
            CompletionTokens = completionTokens,
            QueueTimeMs = (long)(timing?.QueueTime.TotalMilliseconds ?? 0),
            TimeToFirstTokenMs = timing?.TimeToFirstToken is { } ttft ? (long)ttft.TotalMilliseconds : null,
            DurationMs = (long)(timing?.Duration.TotalMilliseconds ?? 0),
            ComputeSeconds = Math.Round((decimal)(timing?.ComputeSeconds ?? 0), 6),
            Outcome = outcome,
            RefusalCode = refusalCode,
            Cost = cost,
            Currency = ticket?.Currency ?? "USD",
            PriceVersion = ticket?.Price?.Version,
        });

    private IEnumerable<Measurement<double>> ObserveRemaining()
    {
        foreach (var (key, remaining) in _remaining)
        {
            var split = key.Split('\u0001');
            yield return new Measurement<double>((double)remaining, new KeyValuePair<string, object?>("tenant", split[0]), new KeyValuePair<string, object?>("currency", split[1]));
        }
    }
}
