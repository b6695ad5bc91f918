// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using Sovereign.Inference.Engine;

namespace Sovereign.Inference.Registry;

/// <summary>What the operator declares about a model when adding it; the rest is read from the GGUF header.</summary>
public abstract record ModelInstallOptions
{
    /// <summary>The model's id: letters, digits, '.', '_', '-', ':' and '/', starting with a letter or digit, at most 128 characters.</summary>
    public required string Id { get; init; }

    /// <summary>Licence id; must pass <see cref="ModelRegistryOptions.IsKnownLicense"/>.</summary>
    public required string License { get; init; }

    /// <summary>Who published the weights.</summary>
    public required string OriginPublisher { get; init; }

    /// <summary>The publisher's country, ISO 3166-1 alpha-2 (e.g. FR, US, CN, TH).</summary>
    public required string OriginCountry { get; init; }

    /// <summary>Languages the model serves well, ISO 639 codes (e.g. en, fr, th); optional.</summary>
    public IReadOnlyList<string> Languages { get; init; } = [];

    /// <summary>Chat (generation) or embedding.</summary>
    public ModelKind Modality { get; init; } = ModelKind.Chat;

    /// <summary>The SHA-256 the file must have (<c>sha256:HEX</c> or bare hex); optional.</summary>
    public string? ExpectedDigest { get; init; }
}

/// <summary>Adds a local GGUF file (an offline site's way in).</summary>
public sealed record ImportOptions : ModelInstallOptions
{
    /// <summary>Move the file into the registry instead of copying it (saves space; the original path disappears).</summary>
    public bool Move { get; init; }
}

/// <summary>Downloads a GGUF file and adds it.</summary>
public sealed record PullRequest : ModelInstallOptions
{
    /// <summary>An https:// URL, http:// on loopback, or <c>hf:ORG/REPO/FILE</c>.</summary>
    public required string Source { get; init; }

    /// <summary>
    /// Install even when no digest is given or published, trusting whatever arrives (recorded as
    /// <see cref="DigestProvenance.Computed"/>). Off by default: pulls fail closed.
    /// </summary>
    public bool AllowUnverified { get; init; }
}

/// <summary>Stage of a pull or import.</summary>
public enum PullPhase
{
    /// <summary>Asking the server for the size and the published digest.</summary>
    Resolving,

    /// <summary>Receiving bytes (or copying them, for an import).</summary>
    Downloading,

    /// <summary>Hashing bytes that were already on disk (a resumed partial file, or a moved import).</summary>
    Hashing,

    /// <summary>Checking the header and moving the file into place.</summary>
    Installing,
}

/// <summary>Progress of a pull or import. <see cref="TotalBytes"/> is null while the size is unknown.</summary>
public readonly record struct PullProgress(PullPhase Phase, long Bytes, long? TotalBytes, long ResumedFromBytes = 0);

/// <summary>What happened to one model in <see cref="ModelRegistry.VerifyAsync"/>.</summary>
public enum ModelVerificationStatus
{
    /// <summary>The file has the registered digest.</summary>
    Ok,

    /// <summary>The file is gone.</summary>
    Missing,

    /// <summary>The file's size differs (so its digest does too).</summary>
    SizeMismatch,

    /// <summary>The file's digest differs.</summary>
    DigestMismatch,
}

/// <summary>One model's verification result.</summary>
public sealed record ModelVerification(ModelEntry Entry, string Path, ModelVerificationStatus Status, string? ActualDigest, long? ActualSize)
{
    /// <summary>True when the file is intact.</summary>
    public bool IsOk => Status == ModelVerificationStatus.Ok;
}

/// <summary>All models re-hashed, and files in <c>blobs/</c> that no entry references.</summary>
public sealed record ModelVerificationReport(IReadOnlyList<ModelVerification> Models, IReadOnlyList<string> UnreferencedBlobs)
{
    /// <summary>True when every model's file is intact.</summary>
    public bool AllOk => Models.All(m => m.IsOk);
}

/// <summary>A removed entry, and whether its file went with it (it stays while another id shares it).</summary>
public sealed record ModelRemoval(ModelEntry Entry, bool BlobDeleted);

/// <summary>A model whose file was re-hashed just now and matched the registry.</summary>
public sealed record VerifiedModel(ModelEntry Entry, string Path);

/// <summary>What a registry event records.</summary>
public enum ModelRegistryAction
{
    /// <summary>A model was pulled or imported.</summary>
    Installed,

    /// <summary>A model was removed.</summary>
    Removed,

    /// <summary><see cref="ModelRegistry.VerifyAsync"/> found a file missing or altered.</summary>
    VerificationFailed,

    /// <summary>A file was re-hashed before loading and matched.</summary>
    LoadVerified,

    /// <summary>A file was re-hashed before loading and did not match (or was missing): the load was refused.</summary>
    LoadRefused,
}

/// <summary>An auditable registry event; hosts forward it to their audit log (audit action e.g. <c>model.load.refused</c>).</summary>
public sealed record ModelRegistryEvent(
    ModelRegistryAction Action,
    string ModelId,
    string Digest,
    string? ActualDigest,
    string Source,
    string Message,
    DateTimeOffset At)
{
    /// <summary>A dotted action name for audit logs: <c>model.installed</c>, <c>model.removed</c>, <c>model.verification_failed</c>, <c>model.load.verified</c>, <c>model.load.refused</c>.</summary>
    public string AuditAction => Action switch
    {
        ModelRegistryAction.Installed => "model.installed",
        ModelRegistryAction.Removed => "model.removed",
        ModelRegistryAction.VerificationFailed => "model.verification_failed",
        ModelRegistryAction.LoadVerified => "model.load.verified",
        _ => "model.load.refused",
    };
}
