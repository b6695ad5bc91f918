// Copyright (c) Sovereign contributors. Licensed under the MIT License.

namespace Sovereign.Inference.Registry;

/// <summary>Where a <see cref="ModelRegistry"/> keeps its files and how it downloads, checks and reports.</summary>
public sealed record ModelRegistryOptions
{
    /// <summary>Free space kept on the model disk beyond the model itself (100 MiB): the audit log and databases need room too.</summary>
    public const long DefaultFreeSpaceReserveBytes = 100L << 20;

    /// <summary>The model directory, usually <c>&lt;data dir&gt;/models</c> (see <see cref="ForDataDirectory"/>).</summary>
    public required string Directory { get; init; }

    /// <summary>
    /// Decides whether a licence id is acceptable. Defaults to <see cref="ModelLicenses.IsKnown"/>; a host with a residency
    /// policy passes its own list (for example <c>Sovereign.Residency.Policies.KnownLicenses.IsKnown</c>).
    /// </summary>
    public Func<string, bool> IsKnownLicense { get; init; } = ModelLicenses.IsKnown;

    /// <summary>Canonical spelling of an accepted licence id; defaults to <see cref="ModelLicenses.Canonicalize"/>.</summary>
    public Func<string, string> CanonicalizeLicense { get; init; } = ModelLicenses.Canonicalize;

    /// <summary>Base URL that <c>hf:</c> sources resolve against: <c>HF_ENDPOINT</c> when set, else https://huggingface.co.</summary>
    public Uri HuggingFaceEndpoint { get; init; } =
        Uri.TryCreate(Environment.GetEnvironmentVariable("HF_ENDPOINT"), UriKind.Absolute, out var endpoint) ? endpoint : ModelSource.DefaultHuggingFaceEndpoint;

    /// <summary>Bearer token for gated Hugging Face repositories (<c>HF_TOKEN</c>); sent only to the Hugging Face endpoint's host.</summary>
    public string? HuggingFaceToken { get; init; } = Environment.GetEnvironmentVariable("HF_TOKEN");

    /// <summary>
    /// Creates the HTTP handler for downloads. It must not follow redirects itself: the registry follows them, checking
    /// each hop's scheme and reading Hugging Face's digest headers on the way. Defaults to a <see cref="SocketsHttpHandler"/>.
    /// </summary>
    public Func<HttpMessageHandler>? CreateHttpHandler { get; init; }

    /// <summary>Times a pull reconnects and resumes after the connection drops, before giving up (the partial file stays).</summary>
    public int MaxRetries { get; init; } = 3;

    /// <summary>Pause before the first reconnect; doubles for each further one.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>A download that receives nothing for this long counts as dropped (and is resumed).</summary>
    public TimeSpan ReadTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long an operation waits for another process that holds the registry lock.</summary>
    public TimeSpan LockTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Free bytes on the volume holding a directory, or null when unknown. Defaults to <see cref="DriveInfo.AvailableFreeSpace"/>;
    /// tests inject a small number to simulate a full disk.
    /// </summary>
    public Func<string, long?> AvailableFreeSpace { get; init; } = DefaultAvailableFreeSpace;

    /// <summary>Bytes that must remain free after a model is written.</summary>
    public long FreeSpaceReserveBytes { get; init; } = DefaultFreeSpaceReserveBytes;

    /// <summary>
    /// Receives what the registry did: installs, removals, verification failures, and loads verified or refused. Hosts
    /// forward these to their audit log. An exception from the sink propagates to the caller (a refused load stays refused).
    /// </summary>
    public Func<ModelRegistryEvent, CancellationToken, ValueTask>? OnEvent { get; init; }

    /// <summary>Clock for entries' <see cref="ModelEntry.AddedAt"/>, events and retry delays.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Options for the registry in <c>&lt;dataDirectory&gt;/models</c>.</summary>
    public static ModelRegistryOptions ForDataDirectory(string dataDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDirectory);
        return new ModelRegistryOptions { Directory = Path.Combine(dataDirectory, "models") };
    }

    private static long? DefaultAvailableFreeSpace(string directory)
    {
        try
        {
            return new DriveInfo(Path.GetFullPath(directory)).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
