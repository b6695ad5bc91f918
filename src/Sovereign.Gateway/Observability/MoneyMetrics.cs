using System.Diagnostics.Metrics;
using Sovereign.Gateway.Metering;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.Observability;

/// <summary>
/// The money this gateway holds open, for the on-call engineer: <c>sovereign_budget_leases_open</c> (the budget leases
/// it holds, one per tenant key; 0 where leases are off) and <c>sovereign_reservations_open</c> (the requests whose
/// budget reservation it keeps alive now). A count that only grows means money held and never settled: a tenant sees
/// less budget than it has until the grain expires the reservation or the lease's term ends. No tenant label.
/// </summary>
internal sealed class MoneyMetrics
{
    /// <summary>The instrument for open budget leases.</summary>
    public const string LeasesMetric = "sovereign.budget.leases.open";

    /// <summary>The instrument for open reservations.</summary>
    public const string ReservationsMetric = "sovereign.reservations.open";

    public MoneyMetrics(BudgetLeases leases, ReservationRenewals reservations, IMeterFactory meters)
    {
        var meter = meters.Create(EngineMetrics.MeterName);
        meter.CreateObservableGauge(LeasesMetric, () => leases.Count, "{lease}",
            "Budget leases this gateway holds now (a slice of a tenant key's budget it admits from without a grain call).");
        meter.CreateObservableGauge(ReservationsMetric, () => reservations.Count, "{reservation}",
            "Requests whose budget reservation this gateway holds open now (running, their books not closed).");
    }
}
