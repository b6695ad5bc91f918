using System.Buffers.Binary;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;

namespace Sovereign.Gateway.Hosting;

/// <summary>
/// One id per request, sent on every answer as OpenAI's <c>x-request-id</c> (the SDKs show it: openai-python's
/// <c>_request_id</c>, the raw response's headers in .NET), errors included, so a tenant can quote the request it means.
/// A routed request's audit entries and usage record carry the same id (also sent as <c>x-sovereign-audit-id</c>).
/// It is always made here, never taken from the client: it is the usage ledger's idempotency key, and a chosen id could
/// make a request's record collide with another's.
/// </summary>
/// <remarks>
/// The id is <c>req_</c> and 32 hexadecimal digits, as OpenAI's: the time it was made in Unix milliseconds (12 digits),
/// then 80 random bits. Ids made later sort after earlier ones (ordinal order), so the usage ledger's unique
/// request-id index grows at its end, like its time index, instead of taking each record on a random page: with
/// 24 random digits a record landed on a page of the whole index, which outgrows the page cache (at 150,000 records
/// the commit carrying it took twice as long, docs/benchmarks.md). Eighty random bits keep ids made in the same
/// millisecond, by this gateway or another, from colliding: the ledger keeps the first record of an id and drops a
/// second (<c>ON CONFLICT DO NOTHING</c>), so a collision would lose a request's money.
/// </remarks>
internal static class RequestIds
{
    public const string Header = "x-request-id";

    /// <summary>This request's id, made on first use.</summary>
    public static string Of(HttpContext context)
    {
        if (context.Items[typeof(RequestIds)] is not string id)
        {
            id = New(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            context.Items[typeof(RequestIds)] = id;
        }

        return id;
    }

    /// <summary>A new id made at <paramref name="unixMilliseconds"/>: <c>req_</c>, that time in 12 hex digits, 80 random bits in 20.</summary>
    internal static string New(long unixMilliseconds)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(unixMilliseconds);
        Span<byte> bytes = stackalloc byte[16];
        // The time's low 48 bits, big-endian, so the hex digits sort as the time does (until the year 10889).
        BinaryPrimitives.WriteInt64BigEndian(bytes, unixMilliseconds << 16);
        RandomBits.Take(bytes[6..]);
        return string.Create(4 + 32, bytes, static (chars, state) =>
        {
            "req_".CopyTo(chars);
            Convert.TryToHexStringLower(state, chars[4..], out _);
        });
    }

    /// <summary>
    /// The random bits of ids, drawn from the system's cryptographic generator 500 bytes (50 ids) at a time per thread:
    /// one draw per id went through OpenSSL's generator, its locks and a getpid system call on every request (session
    /// 50's syscall count). The bits are the same generator's; each is handed out once.
    /// </summary>
    private static class RandomBits
    {
        private const int Size = 500;

        [ThreadStatic]
        private static byte[]? t_buffer;

        [ThreadStatic]
        private static int t_used;

        public static void Take(Span<byte> destination)
        {
            var buffer = t_buffer ??= new byte[Size];
            if (t_used == 0 || t_used + destination.Length > Size)
            {
                RandomNumberGenerator.Fill(buffer);
                t_used = 0;
            }

            var taken = buffer.AsSpan(t_used, destination.Length);
            taken.CopyTo(destination);
            taken.Clear();
            t_used += destination.Length;
            if (t_used == Size)
            {
                t_used = 0;
            }
        }
    }

    /// <summary>
    /// An operator's audit entry's details with this request's id (<c>request_id</c>, where inference entries keep
    /// theirs): the entry can be found from the <c>x-request-id</c> the answer stated.
    /// </summary>
    public static Dictionary<string, string> Stated(HttpContext context, Dictionary<string, string> details)
    {
        details["request_id"] = Of(context);
        return details;
    }

    /// <summary>Sends the id on every application answer (set when the answer starts, so an error's cleared headers get it too).</summary>
    public static void UseRequestIds(this IApplicationBuilder app) => app.Use((context, next) =>
    {
        // The context as the callback's state: a closure over it was two objects more per request.
        context.Response.OnStarting(StateIdOnStart, context);
        return next(context);
    });

    private static readonly Func<object, Task> StateIdOnStart = state =>
    {
        var context = (HttpContext)state;
        context.Response.Headers[Header] = Of(context);
        return Task.CompletedTask;
    };
}
