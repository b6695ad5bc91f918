namespace Sovereign.Metering.Pricing;

/// <summary>
/// The price book in force in this process: loaded from the store at start, replaced atomically when the operator
/// changes a plan or price here (readers never see a half-applied change), and reloaded when another process of the
/// cluster saved a newer version (<see cref="RefreshAsync"/>). A book only ever moves to a newer version.
/// </summary>
public sealed class PriceBookProvider(PriceBookStore store, Func<PriceBook, Task>? published = null)
{
    private readonly Lock _lock = new();
    private volatile PriceBook _current = new([]);

    /// <summary>The current book.</summary>
    public PriceBook Current => _current;

    /// <summary>Loads the book from the store.</summary>
    public async Task ReloadAsync(CancellationToken cancellationToken = default) => Offer(await store.LoadAsync(cancellationToken));

    /// <summary>Reloads the book when the store holds a newer version than <see cref="Current"/>; true if it did.</summary>
    public async Task<bool> RefreshAsync(long storedVersion, CancellationToken cancellationToken = default)
    {
        if (storedVersion <= _current.Version)
        {
            return false;
        }

        await ReloadAsync(cancellationToken);
        return true;
    }

    /// <summary>The stored book's version (one cheap read).</summary>
    public Task<long> ReadStoredVersionAsync(CancellationToken cancellationToken = default) => store.ReadVersionAsync(cancellationToken);

    /// <summary>
    /// Applies a change to the stored book, saves it, makes it current, and tells the cluster (the hook given at
    /// construction); throws <see cref="PriceValidationException"/> on invalid input.
    /// </summary>
    public async Task<PriceBook> UpdateAsync(Func<PriceBook, PriceBook> change, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        var next = await store.UpdateAsync(change, now, cancellationToken);
        Offer(next);
        if (published is not null)
        {
            await published(next);
        }

        return next;
    }

    private void Offer(PriceBook book)
    {
        lock (_lock)
        {
            if (book.Version >= _current.Version)
            {
                _current = book;
            }
        }
    }
}
