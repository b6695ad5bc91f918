namespace Sovereign.Metering.Pricing;

/// <summary>
/// The price book in force in this process: loaded from the store at start and replaced atomically when the
/// operator changes a plan or price (readers never see a half-applied change).
/// </summary>
public sealed class PriceBookProvider(PriceBookStore store)
{
    private volatile PriceBook _current = new([]);

    /// <summary>The current book.</summary>
    public PriceBook Current => _current;

    /// <summary>Loads the book from the store.</summary>
    public async Task ReloadAsync(CancellationToken cancellationToken = default) => _current = await store.LoadAsync(cancellationToken);

    /// <summary>Applies a change, saves it, and makes it current; throws <see cref="PriceValidationException"/> on invalid input.</summary>
    public async Task<PriceBook> UpdateAsync(Func<PriceBook, PriceBook> change, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        var next = change(_current);
        await store.SaveAsync(next, now, cancellationToken);
        _current = next;
        return next;
    }
}
