using System.Data.Common;
using Sovereign.Cluster.Grains;
using Sovereign.Storage;

namespace Sovereign.Cluster.Hosting;

/// <summary>
/// A grain that meets its database unreachable throws <see cref="StorageUnavailableException"/> in the driver's
/// place. Npgsql's exceptions have no Orleans codec: a caller on another member (or an Orleans client) received
/// "Could not find a codec for type Npgsql.NpgsqlException", which the gateway answered 500, not the 503
/// <c>storage_unavailable</c> it gives the same failure in its own process. "Unreachable" is
/// <see cref="DatabaseFailures.IsUnavailable"/>: a server that is down, but also one that refuses writes now (a
/// read-only standby) or stopped the statement (<c>statement_timeout</c>). Other database errors are defects and stay
/// as they are.
/// </summary>
public static class StorageFailures
{
    /// <summary>Adds the translation of grain calls to <paramref name="silo"/> (activations use <see cref="ActivateAsync"/>).</summary>
    public static ISiloBuilder AddSovereignGrainFilters(this ISiloBuilder silo) =>
        silo.AddIncomingGrainCallFilter<TranslatingFilter>();

    /// <summary>Runs a grain's activation work with the same translation (call filters do not see activations).</summary>
    public static async Task ActivateAsync(Func<Task> activation)
    {
        try
        {
            await activation();
        }
        catch (DbException ex) when (DatabaseFailures.IsUnavailable(ex) || DatabaseFailures.IsDamaged(ex))
        {
            throw Unavailable(ex);
        }
    }

    // The driver's exception is not carried as the inner one: it has no codec either. Its message is, for the log.
    // Damaged data is said so (StorageUnavailableException.DamagedPrefix): it was a raw driver exception, a 500.
    private static StorageUnavailableException Unavailable(DbException exception) => DatabaseFailures.IsDamaged(exception)
        ? new($"{StorageUnavailableException.DamagedPrefix} ({exception.GetType().Name}: {exception.Message.TrimEnd('.')}).")
        : new($"The database is not reachable right now ({exception.GetType().Name}: {exception.Message.TrimEnd('.')}).");

    private sealed class TranslatingFilter : IIncomingGrainCallFilter
    {
        public async Task Invoke(IIncomingGrainCallContext context)
        {
            try
            {
                await context.Invoke();
            }
            catch (DbException ex) when (DatabaseFailures.IsUnavailable(ex) || DatabaseFailures.IsDamaged(ex))
            {
                throw Unavailable(ex);
            }
        }
    }
}
