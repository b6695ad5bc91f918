// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;

namespace Sovereign.Inference.Registry;

/// <summary>
/// HTTP side of a pull: finds the size and the published digest, then downloads into a partial file, resuming with
/// <c>Range</c> where the server allows it and restarting where it does not, hashing as the bytes arrive. Redirects
/// are followed here (the handler must not follow them) so every hop's scheme is checked and Hugging Face's
/// <c>X-Linked-Etag</c> on the first hop is seen.
/// </summary>
internal sealed class ModelDownloader : IDisposable
{
    private const int MaxRedirects = 10;
    private const int SidecarMaxBytes = 4096;
    private const int BufferSize = 1 << 20;
    private const long ProgressStepBytes = 256 << 10;

    private readonly HttpClient _http;
    private readonly ModelRegistryOptions _options;

    public ModelDownloader(ModelRegistryOptions options)
    {
        _options = options;
        var handler = options.CreateHttpHandler?.Invoke() ?? new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(30),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        };
        _http = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("sovereign-model-registry", "1.0"));
    }

    public void Dispose() => _http.Dispose();

    /// <summary>
    /// Size and published digest of <paramref name="source"/>. For Hugging Face sources the digest is the LFS ETag
    /// (<c>X-Linked-Etag</c>, else a 64-hex <c>ETag</c>), which is the file's SHA-256. Otherwise, and when
    /// <paramref name="trySidecar"/>, a <c>&lt;url&gt;.sha256</c> file beside the model is read.
    /// </summary>
    public Task<RemoteModelInfo> ProbeAsync(ModelSource source, bool trySidecar, CancellationToken cancellationToken) =>
        RetryAsync(async () =>
        {
            string? published = null;
            string? origin = null;
            long? linkedSize = null;
            using var response = await SendAsync(HttpMethod.Head, source, source.Url, rangeFrom: null, hop =>
            {
                if (source.Kind != ModelSourceKind.HuggingFace || published is not null)
                {
                    return;
                }

                if (ParseEtag(Header(hop, "X-Linked-Etag")) is { } linked)
                {
                    (published, origin) = (linked, "Hugging Face X-Linked-Etag");
                }
                else if (ParseEtag(Header(hop, "ETag")) is { } etag)
                {
                    (published, origin) = (etag, "Hugging Face ETag");
                }

                if (long.TryParse(Header(hop, "X-Linked-Size"), NumberStyles.None, CultureInfo.InvariantCulture, out var size))
                {
                    linkedSize = size;
                }
            }, cancellationToken);

            long? length = null;
            if (response.IsSuccessStatusCode)
            {
                length = linkedSize ?? response.Content.Headers.ContentLength;
            }
            else if ((int)response.StatusCode is 404 or 410 or 401 or 403 or 408 or 429 or >= 500)
            {
                throw StatusError(response, source.Url);
            }

            // Other answers (405 Method Not Allowed for HEAD, ...) say nothing; the GET decides.
            if (published is null && trySidecar)
            {
                (published, origin) = await ReadSidecarAsync(source, cancellationToken);
            }

            return new RemoteModelInfo(length, published, origin);
        }, cancellationToken, what => $"Could not reach {source.Url.Host} for {source.Original}: {what}");

    /// <summary>
    /// Downloads into <paramref name="partialPath"/>, resuming from what it already holds, and returns the digest and
    /// size of the complete file. A dropped connection is retried (resumed) up to <see cref="ModelRegistryOptions.MaxRetries"/>
    /// times, then reported as <see cref="ModelRegistryError.DownloadInterrupted"/> with the partial file kept.
    /// <paramref name="ensureFreeSpace"/> is called with the bytes still to come, once the server has said how many.
    /// </summary>
    public Task<DownloadResult> DownloadAsync(
        ModelSource source, string partialPath, Action<long> ensureFreeSpace, IProgress<PullProgress>? progress, CancellationToken cancellationToken) =>
        RetryAsync(() => DownloadOnceAsync(source, partialPath, ensureFreeSpace, progress, cancellationToken), cancellationToken, what =>
        {
            var kept = File.Exists(partialPath) ? new FileInfo(partialPath).Length : 0;
            return $"The download of {source.Original} was interrupted ({what}); {kept:N0} bytes are kept in {partialPath}: run the same pull again to resume.";
        });

    private async Task<DownloadResult> DownloadOnceAsync(
        ModelSource source, string partialPath, Action<long> ensureFreeSpace, IProgress<PullProgress>? progress, CancellationToken cancellationToken)
    {
        FileStream file;
        try
        {
            file = new FileStream(partialPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 0, FileOptions.Asynchronous);
        }
        catch (IOException ex) when (File.Exists(partialPath) && !ModelRegistry.IsDiskFull(ex))
        {
            throw new ModelRegistryException(ModelRegistryError.Busy,
                $"Another pull is writing {partialPath} (the same model); wait for it to finish. ({ex.Message})", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw ModelRegistry.StorageError(ex, partialPath);
        }

        await using (file)
        {
            try
            {
                return await DownloadIntoAsync(file, source, ensureFreeSpace, progress, cancellationToken);
            }
            catch (IOException ex)
            {
                // Network reads are translated inside; an IOException here is the disk's.
                throw ModelRegistry.StorageError(ex, partialPath);
            }
        }
    }

    private async Task<DownloadResult> DownloadIntoAsync(
        FileStream file, ModelSource source, Action<long> ensureFreeSpace, IProgress<PullProgress>? progress, CancellationToken cancellationToken)
    {
        var offset = file.Length;
        using var response = await SendAsync(HttpMethod.Get, source, source.Url, offset > 0 ? offset : null, onHop: null, cancellationToken);
        long? total;
        switch (response.StatusCode)
        {
            case HttpStatusCode.PartialContent:
                var range = response.Content.Headers.ContentRange;
                if (range?.From != offset)
                {
                    file.SetLength(0);
                    throw new TransientDownloadException($"the server sent bytes from {range?.From} instead of {offset}; starting over");
                }

                total = range.Length ?? (response.Content.Headers.ContentLength is { } rest ? offset + rest : null);
                break;

            case HttpStatusCode.OK:
                // No Range support (or the server chose to send everything): start over.
                if (offset > 0)
                {
                    file.SetLength(0);
                    offset = 0;
                }

                total = response.Content.Headers.ContentLength;
                break;

            case HttpStatusCode.RequestedRangeNotSatisfiable when response.Content.Headers.ContentRange?.Length == offset && offset > 0:
                // The partial file is already complete.
                return await HashWholeAsync(file, offset, progress, cancellationToken);

            case HttpStatusCode.RequestedRangeNotSatisfiable:
                file.SetLength(0);
                throw new TransientDownloadException("the partial download is longer than the file; starting over");

            default:
                throw StatusError(response, source.Url);
        }

        if (total is { } expectedTotal)
        {
            ensureFreeSpace(expectedTotal - offset);
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        if (offset > 0)
        {
            file.Position = 0;
            var hashed = await ModelDigest.AppendAsync(hash, file, offset,
                progress is null ? null : new InlineProgress<long>(n => progress.Report(new PullProgress(PullPhase.Hashing, n, offset))), cancellationToken);
            if (hashed != offset)
            {
                throw new IOException($"The partial file shrank while it was read ({hashed} of {offset} bytes).");
            }
        }

        file.Position = offset;
        var received = offset;
        var reported = -ProgressStepBytes;
        progress?.Report(new PullProgress(PullPhase.Downloading, received, total, offset));
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            Stream body;
            try
            {
                body = await response.Content.ReadAsStreamAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException)
            {
                throw new TransientDownloadException($"the connection dropped: {ex.Message}", ex);
            }

            await using var disposeBody = body;
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            while (true)
            {
                int read;
                try
                {
                    idle.CancelAfter(_options.ReadTimeout);
                    read = await body.ReadAsync(buffer, idle.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new TransientDownloadException($"no data for {_options.ReadTimeout.TotalSeconds:0} s after {received:N0} bytes");
                }
                catch (Exception ex) when (ex is IOException or HttpRequestException)
                {
                    throw new TransientDownloadException($"the connection dropped after {received:N0} bytes: {ex.Message}", ex);
                }

                if (read == 0)
                {
                    break;
                }

                await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                hash.AppendData(buffer, 0, read);
                received += read;
                if (received - reported >= ProgressStepBytes)
                {
                    reported = received;
                    progress?.Report(new PullProgress(PullPhase.Downloading, received, total, offset));
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        if (total is { } size && received < size)
        {
            throw new TransientDownloadException($"the connection closed after {received:N0} of {size:N0} bytes");
        }

        file.Flush(flushToDisk: true);
        progress?.Report(new PullProgress(PullPhase.Downloading, received, total ?? received, offset));
        return new DownloadResult(ModelDigest.FromHash(hash.GetHashAndReset()), received);
    }

    private static async Task<DownloadResult> HashWholeAsync(FileStream file, long length, IProgress<PullProgress>? progress, CancellationToken cancellationToken)
    {
        file.Position = 0;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await ModelDigest.AppendAsync(hash, file, length,
            progress is null ? null : new InlineProgress<long>(n => progress.Report(new PullProgress(PullPhase.Hashing, n, length))), cancellationToken);
        return new DownloadResult(ModelDigest.FromHash(hash.GetHashAndReset()), length);
    }

    private async Task<(string? Digest, string? Origin)> ReadSidecarAsync(ModelSource source, CancellationToken cancellationToken)
    {
        var sidecar = new UriBuilder(source.Url) { Path = source.Url.AbsolutePath + ".sha256" }.Uri;
        using var response = await SendAsync(HttpMethod.Get, source, sidecar, rangeFrom: null, onHop: null, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            return (null, null);
        }

        // sha256sum's format ("HEX  name"), or just the digest; at most a few KB are read.
        var buffer = new byte[SidecarMaxBytes];
        var length = 0;
        try
        {
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            int read;
            while (length < buffer.Length && (read = await body.ReadAsync(buffer.AsMemory(length), cancellationToken)) > 0)
            {
                length += read;
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            throw new TransientDownloadException($"reading {sidecar} failed: {ex.Message}", ex);
        }

        var text = Encoding.UTF8.GetString(buffer, 0, length);
        var first = text.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        return ModelDigest.TryNormalize(first, out var digest) ? (digest, sidecar.ToString()) : (null, null);
    }

    private async Task<HttpResponseMessage> SendAsync(
        HttpMethod method, ModelSource source, Uri url, long? rangeFrom, Action<HttpResponseMessage>? onHop, CancellationToken cancellationToken)
    {
        for (var hop = 0; ; hop++)
        {
            using var request = new HttpRequestMessage(method, url);
            if (rangeFrom is { } from)
            {
                request.Headers.Range = new RangeHeaderValue(from, null);
            }

            if (source.Kind == ModelSourceKind.HuggingFace && !string.IsNullOrEmpty(_options.HuggingFaceToken)
                && Uri.Compare(url, _options.HuggingFaceEndpoint, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _options.HuggingFaceToken);
            }

            HttpResponseMessage response;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                timeout.CancelAfter(_options.ReadTimeout);
                try
                {
                    response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new TransientDownloadException($"{url.Host} did not answer within {_options.ReadTimeout.TotalSeconds:0} s");
                }
                catch (HttpRequestException ex)
                {
                    throw new TransientDownloadException($"cannot reach {url.Authority}: {ex.Message}", ex);
                }
            }

            onHop?.Invoke(response);
            if ((int)response.StatusCode is 301 or 302 or 303 or 307 or 308 && response.Headers.Location is { } location)
            {
                response.Dispose();
                var next = location.IsAbsoluteUri ? location : new Uri(url, location);
                if (hop >= MaxRedirects)
                {
                    throw new ModelRegistryException(ModelRegistryError.DownloadFailed, $"{source.Original}: more than {MaxRedirects} redirects.");
                }

                try
                {
                    ModelSource.CheckUrl(next, next.ToString());
                    if (next.IsLoopback && !url.IsLoopback)
                    {
                        throw new ModelRegistryException(ModelRegistryError.InvalidArgument, $"'{next}' is on this machine's loopback interface, and {url.Host} is not.");
                    }
                }
                catch (ModelRegistryException ex)
                {
                    throw new ModelRegistryException(ModelRegistryError.DownloadFailed, $"{url} redirects to a refused location: {ex.Message}", ex);
                }

                url = next;
                continue;
            }

            return response;
        }
    }

    private async Task<T> RetryAsync<T>(Func<Task<T>> attempt, CancellationToken cancellationToken, Func<string, string> describeFailure)
    {
        for (var retry = 0; ; retry++)
        {
            try
            {
                return await attempt();
            }
            catch (TransientDownloadException) when (retry < _options.MaxRetries)
            {
                var delay = _options.RetryDelay * Math.Pow(2, retry);
                if (delay > TimeSpan.Zero)
                {
                    await Task.Delay(delay, _options.TimeProvider, cancellationToken);
                }
            }
            catch (TransientDownloadException ex)
            {
                throw new ModelRegistryException(ModelRegistryError.DownloadInterrupted, describeFailure(ex.Message), ex);
            }
        }
    }

    private static Exception StatusError(HttpResponseMessage response, Uri url)
    {
        var code = (int)response.StatusCode;
        var text = $"{response.RequestMessage?.RequestUri ?? url} answered {code} {response.ReasonPhrase}";
        if (code is 408 or 429 or >= 500)
        {
            return new TransientDownloadException(text);
        }

        var hint = code is 401 or 403 ? " (a gated Hugging Face repository needs a token: set HF_TOKEN)" : "";
        return new ModelRegistryException(ModelRegistryError.DownloadFailed, $"Cannot download: {text}{hint}.");
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values) ? values.FirstOrDefault() : null;

    private static string? ParseEtag(string? etag)
    {
        if (etag is null)
        {
            return null;
        }

        var value = etag.Trim();
        if (value.StartsWith("W/", StringComparison.Ordinal))
        {
            value = value[2..];
        }

        return ModelDigest.TryNormalize(value.Trim('"'), out var digest) ? digest : null;
    }
}

/// <summary>What the server says about a model before the download.</summary>
internal sealed record RemoteModelInfo(long? Size, string? PublishedDigest, string? DigestOrigin);

/// <summary>A finished download: the digest and size of the bytes received.</summary>
internal sealed record DownloadResult(string Digest, long Size);

/// <summary>The connection dropped, stalled or answered 5xx: worth resuming.</summary>
internal sealed class TransientDownloadException : Exception
{
    public TransientDownloadException()
    {
    }

    public TransientDownloadException(string message)
        : base(message)
    {
    }

    public TransientDownloadException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>An <see cref="IProgress{T}"/> that reports on the caller's thread, in order (Progress&lt;T&gt; posts to the thread pool).</summary>
public sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    /// <inheritdoc />
    public void Report(T value) => report(value);
}
