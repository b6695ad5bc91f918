using System.Data.Common;
using System.Globalization;
using Sovereign.Metering.Ledger;

namespace Sovereign.Metering.Tests.Ledger;

/// <summary>
/// The page cache of a connection that carries usage records in its own transactions (the audit log's). SQLite scans a
/// connection's whole page-cache hash table at the end of every commit that rebalanced a b-tree page, so the ledger's
/// 64 MiB cache on the audit connection cost a governed request's commits in proportion to its size: the host keeps
/// its own cache unless <see cref="UsageLedgerOptions.CarriedCacheSizeMiB"/> asks for another.
/// </summary>
public sealed class CarriedCacheTests
{
    [Fact]
    public async Task Borrow_ByDefault_LeavesTheHostConnectionsPageCache()
    {
        using var temp = new TempDatabase();
        await using var ledger = await temp.OpenLedgerAsync();
        await using var connection = await temp.Database.OpenAsync();
        var before = await CacheSizeAsync(connection);

        var writer = LedgerWriter.Borrow(temp.Database, connection, null, new UsageLedgerOptions());
        var borrowed = await CacheSizeAsync(connection);
        writer.ReturnBorrowed();

        Assert.Equal(before, borrowed);
        Assert.Equal(before, await CacheSizeAsync(connection));
    }

    [Fact]
    public async Task Borrow_WithACarriedCacheSize_UsesItWhileBorrowedAndGivesSqlitesDefaultBack()
    {
        using var temp = new TempDatabase();
        await using var ledger = await temp.OpenLedgerAsync();
        await using var connection = await temp.Database.OpenAsync();

        var writer = LedgerWriter.Borrow(temp.Database, connection, null, new UsageLedgerOptions { CarriedCacheSizeMiB = 8 });
        var borrowed = await CacheSizeAsync(connection);
        writer.ReturnBorrowed();

        Assert.Equal(-8 * 1024, borrowed);
        Assert.Equal(-2000, await CacheSizeAsync(connection));
    }

    [Fact]
    public void CarriedCacheSizeMiB_BelowOne_IsRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new UsageLedgerOptions { CarriedCacheSizeMiB = 0 }.Validate());
    }

    private static async Task<long> CacheSizeAsync(DbConnection connection)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA cache_size";
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }
}
