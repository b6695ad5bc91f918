using System.Net.Sockets;
using System.Text;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>An HTTP/1.1 answer read off a raw socket.</summary>
/// <param name="Status">The status code, or 0 when the server closed the connection without answering.</param>
public sealed record RawResponse(int Status, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string Text => Encoding.UTF8.GetString(Body);
}

/// <summary>
/// Sends hand-made HTTP/1.1 requests over a plain socket, so tests can send what HttpClient refuses to: broken chunked
/// framing, invalid UTF-8, bodies that stop early. One connection per request (<c>Connection: close</c>).
/// </summary>
public static class RawHttp
{
    /// <summary>Builds a request with a Content-Length body (or none) and the given extra header lines.</summary>
    public static byte[] Request(string method, string target, byte[]? body, params string[] headers)
    {
        var head = new StringBuilder();
        head.Append(method).Append(' ').Append(target).Append(" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        foreach (var header in headers)
        {
            head.Append(header).Append("\r\n");
        }

        if (body is not null && !headers.Any(h => h.StartsWith("Transfer-Encoding:", StringComparison.OrdinalIgnoreCase) || h.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)))
        {
            head.Append("Content-Length: ").Append(body.Length).Append("\r\n");
        }

        head.Append("\r\n");
        return [.. Encoding.ASCII.GetBytes(head.ToString()), .. body ?? []];
    }

    /// <summary>Sends the bytes, half-closes, and reads the whole answer (the server closes after it).</summary>
    public static async Task<RawResponse> SendAsync(Uri server, byte[] request, CancellationToken cancellationToken = default) =>
        Parse(await ExchangeAsync(server, request, cancellationToken));

    /// <summary>Sends the bytes and returns every byte the server sends until it closes (several pipelined answers).</summary>
    public static async Task<byte[]> ExchangeAsync(Uri server, byte[] request, CancellationToken cancellationToken = default)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(server.Host, server.Port, cancellationToken);
        var stream = client.GetStream();
        try
        {
            await stream.WriteAsync(request, cancellationToken);
            await stream.FlushAsync(cancellationToken);
        }
        catch (IOException)
        {
            // The server may answer and close before it has read everything (e.g. a 413); read what it said.
        }

        using var received = new MemoryStream();
        try
        {
            await stream.CopyToAsync(received, cancellationToken);
        }
        catch (IOException)
        {
            // A reset after the answer: keep what arrived.
        }

        return received.ToArray();
    }

    private static RawResponse Parse(byte[] data)
    {
        var end = data.AsSpan().IndexOf("\r\n\r\n"u8);
        if (end < 0)
        {
            return new RawResponse(0, new Dictionary<string, string>(), data);
        }

        var lines = Encoding.ASCII.GetString(data, 0, end).Split("\r\n");
        var status = int.Parse(lines[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }

        var body = data.AsSpan(end + 4).ToArray();
        if (headers.TryGetValue("Transfer-Encoding", out var encoding) && encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            body = Dechunk(body);
        }

        return new RawResponse(status, headers, body);
    }

    private static byte[] Dechunk(byte[] chunked)
    {
        using var body = new MemoryStream();
        var position = 0;
        while (position < chunked.Length)
        {
            var lineEnd = chunked.AsSpan(position).IndexOf("\r\n"u8);
            if (lineEnd < 0)
            {
                break;
            }

            var sizeText = Encoding.ASCII.GetString(chunked, position, lineEnd).Split(';')[0];
            var size = Convert.ToInt32(sizeText, 16);
            position += lineEnd + 2;
            if (size == 0)
            {
                break;
            }

            body.Write(chunked, position, Math.Min(size, chunked.Length - position));
            position += size + 2;
        }

        return body.ToArray();
    }
}
