using System.Globalization;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// OpenAI's paging parameters of a list (<c>limit</c>, <c>order</c>), read the same way by every list we serve:
/// a value out of range or misspelt is a 400 naming the parameter, never a silent default.
/// </summary>
internal static class ListPaging
{
    /// <summary>The page size: <paramref name="fallback"/> when absent, else a whole number from 1 to <paramref name="max"/>.</summary>
    public static int Limit(IQueryCollection query, int max, int fallback) =>
        (int)(WholeNumber(query["limit"], "limit", 1, max) ?? fallback);

    /// <summary>Whether the page runs newest first: <c>desc</c>, <c>asc</c>, or <paramref name="newestFirstByDefault"/> when absent.</summary>
    public static bool NewestFirst(IQueryCollection query, bool newestFirstByDefault) => query["order"].ToString() switch
    {
        "" => newestFirstByDefault,
        "desc" => true,
        "asc" => false,
        _ => throw OpenAIException.BadRequest("order must be 'asc' or 'desc'.", "order", "invalid_value"),
    };

    /// <summary>A whole-number query parameter from <paramref name="min"/> to <paramref name="max"/>; null when absent.</summary>
    public static long? WholeNumber(string? value, string field, long min, long max)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number >= min && number <= max
            ? number
            : throw OpenAIException.BadRequest(
                string.Create(CultureInfo.InvariantCulture, $"{field} must be a whole number from {min} to {max}; got '{RequestReader.Shorten(value)}'."),
                field, "invalid_value");
    }
}
