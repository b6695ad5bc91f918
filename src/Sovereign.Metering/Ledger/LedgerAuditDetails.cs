namespace Sovereign.Metering.Ledger;

/// <summary>
/// The names under which a request's outcome audit entry states what its usage record bills, so the ledger, which is
/// not hash-chained, can be checked against the chain, which is.
/// </summary>
public static class LedgerAuditDetails
{
    /// <summary>The amount billed, with exactly 6 decimals (the ledger's millionths).</summary>
    public const string Cost = "cost";

    /// <summary>The ISO 4217 currency of <see cref="Cost"/>.</summary>
    public const string Currency = "currency";
}
