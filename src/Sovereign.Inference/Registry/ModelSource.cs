// Copyright (c) Sovereign contributors. Licensed under the MIT License.

namespace Sovereign.Inference.Registry;

/// <summary>Where a pull downloads from.</summary>
public enum ModelSourceKind
{
    /// <summary>An https:// URL (or http:// on the loopback interface).</summary>
    Url,

    /// <summary><c>hf:ORG/REPO/FILE</c> on a Hugging Face endpoint.</summary>
    HuggingFace,
}

/// <summary>A parsed pull source: the URL to fetch and how the user spelled it.</summary>
public sealed record ModelSource(ModelSourceKind Kind, Uri Url, string Original)
{
    /// <summary>The prefix of Hugging Face sources.</summary>
    public const string HuggingFacePrefix = "hf:";

    /// <summary>The public Hugging Face endpoint.</summary>
    public static Uri DefaultHuggingFaceEndpoint { get; } = new("https://huggingface.co/");

    /// <summary>
    /// Parses <c>https://host/path</c>, <c>http://127.0.0.1:port/path</c> (loopback only: tests and local mirrors), or
    /// <c>hf:ORG/REPO/PATH/TO/FILE.gguf</c>, which maps to <c>{endpoint}/ORG/REPO/resolve/main/PATH/TO/FILE.gguf</c>.
    /// Anything else is a <see cref="ModelRegistryError.InvalidArgument"/> naming the problem.
    /// </summary>
    public static ModelSource Parse(string source, Uri? huggingFaceEndpoint = null)
    {
        if (string.IsNullOrWhiteSpace(source))
        {
            throw Invalid("No source given: pass an https:// URL or hf:ORG/REPO/FILE.");
        }

        source = source.Trim();
        if (source.StartsWith(HuggingFacePrefix, StringComparison.OrdinalIgnoreCase))
        {
            return ParseHuggingFace(source, huggingFaceEndpoint ?? DefaultHuggingFaceEndpoint);
        }

        if (!source.Contains("://", StringComparison.Ordinal) || !Uri.TryCreate(source, UriKind.Absolute, out var url))
        {
            throw Invalid($"'{source}' is not a URL: pass an https:// URL or hf:ORG/REPO/FILE (to add a local file, use 'models import').");
        }

        CheckUrl(url, source);
        return new ModelSource(ModelSourceKind.Url, StripFragment(url), source);
    }

    /// <summary>Throws unless <paramref name="url"/> is https, or http to a loopback host, without credentials.</summary>
    internal static void CheckUrl(Uri url, string spelledAs)
    {
        if (!url.IsAbsoluteUri)
        {
            throw Invalid($"'{spelledAs}' is not an absolute URL.");
        }

        var insecureLoopback = url.Scheme == Uri.UriSchemeHttp && url.IsLoopback;
        if (url.Scheme != Uri.UriSchemeHttps && !insecureLoopback)
        {
            throw Invalid(url.Scheme == Uri.UriSchemeHttp
                ? $"'{spelledAs}' uses plain http to a remote host: only https:// is allowed (http:// only to 127.0.0.1 or localhost)."
                : $"'{spelledAs}' uses the unsupported scheme '{url.Scheme}': only https:// URLs and hf:ORG/REPO/FILE are supported.");
        }

        if (!string.IsNullOrEmpty(url.UserInfo))
        {
            throw Invalid($"'{spelledAs}' carries credentials in the URL; they would be stored in the registry. Remove them.");
        }
    }

    private static ModelSource ParseHuggingFace(string source, Uri endpoint)
    {
        CheckUrl(endpoint, endpoint.OriginalString);
        var parts = source[HuggingFacePrefix.Length..].Split('/');
        if (parts.Length < 3 || parts.Any(string.IsNullOrEmpty))
        {
            throw Invalid($"'{source}' is not a Hugging Face source: expected hf:ORG/REPO/FILE, e.g. hf:ggml-org/models/tinyllamas/stories260K.gguf.");
        }

        foreach (var name in parts.Take(2))
        {
            if (!IsRepoName(name))
            {
                throw Invalid($"'{source}': '{name}' is not a valid Hugging Face organisation or repository name (letters, digits, '.', '_', '-').");
            }
        }

        foreach (var segment in parts.Skip(2))
        {
            if (segment is "." or ".." || segment.Contains('\\', StringComparison.Ordinal) || segment.Any(char.IsControl))
            {
                throw Invalid($"'{source}': the file path segment '{segment}' is not allowed.");
            }
        }

        var baseUrl = endpoint.AbsoluteUri.TrimEnd('/');
        var file = string.Join('/', parts.Skip(2).Select(Uri.EscapeDataString));
        var url = new Uri($"{baseUrl}/{parts[0]}/{parts[1]}/resolve/main/{file}");
        return new ModelSource(ModelSourceKind.HuggingFace, url, source);
    }

    private static bool IsRepoName(string name) =>
        name.Length <= 96 && name[0] != '.' && name[0] != '-' && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    private static Uri StripFragment(Uri url) =>
        string.IsNullOrEmpty(url.Fragment) ? url : new UriBuilder(url) { Fragment = "" }.Uri;

    private static ModelRegistryException Invalid(string message) => new(ModelRegistryError.InvalidArgument, message);
}
