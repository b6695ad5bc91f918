// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;

namespace Sovereign.Inference.Registry;

/// <summary>SHA-256 digests in the registry's spelling, <c>sha256:</c> and 64 lower-case hexadecimal digits.</summary>
public static class ModelDigest
{
    /// <summary>The prefix of every digest.</summary>
    public const string Prefix = "sha256:";

    private const int BufferSize = 1 << 20;

    /// <summary>
    /// Accepts 64 hexadecimal digits, optionally prefixed with <c>sha256:</c> (any case, surrounding whitespace
    /// ignored) and returns the canonical spelling.
    /// </summary>
    public static bool TryNormalize([NotNullWhen(true)] string? value, [NotNullWhen(true)] out string? digest)
    {
        digest = null;
        if (string.IsNullOrWhiteSpace(value))
        {
            return false;
        }

        var hex = value.Trim();
        if (hex.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
        {
            hex = hex[Prefix.Length..];
        }

        if (!IsSha256Hex(hex))
        {
            return false;
        }

        digest = Prefix + hex.ToLowerInvariant();
        return true;
    }

    /// <summary>Like <see cref="TryNormalize"/>, but throws a <see cref="ModelRegistryException"/> naming the bad value.</summary>
    public static string Normalize(string value) => TryNormalize(value, out var digest)
        ? digest
        : throw new ModelRegistryException(ModelRegistryError.InvalidArgument,
            $"'{value}' is not a SHA-256 digest: expected 64 hexadecimal digits, optionally prefixed with \"sha256:\".");

    /// <summary>The hexadecimal part of a canonical digest.</summary>
    public static string Hex(string digest)
    {
        ArgumentNullException.ThrowIfNull(digest);
        return digest.StartsWith(Prefix, StringComparison.Ordinal) ? digest[Prefix.Length..] : digest;
    }

    /// <summary>Hashes the file at <paramref name="path"/>, streaming it; reports bytes hashed so far.</summary>
    public static async Task<string> ComputeAsync(string path, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.Asynchronous | FileOptions.SequentialScan);
        return await ComputeAsync(file, progress, cancellationToken);
    }

    /// <summary>Hashes <paramref name="stream"/> from its current position to its end.</summary>
    public static async Task<string> ComputeAsync(Stream stream, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await AppendAsync(hash, stream, long.MaxValue, progress, cancellationToken);
        return FromHash(hash.GetHashAndReset());
    }

    internal static bool IsSha256Hex(ReadOnlySpan<char> hex) => hex.Length == 64 && !hex.ContainsAnyExcept(HexDigits);

    internal static string FromHash(byte[] hash) => Prefix + Convert.ToHexStringLower(hash);

    /// <summary>Feeds up to <paramref name="count"/> bytes of <paramref name="stream"/> into <paramref name="hash"/>; returns how many it read.</summary>
    internal static async Task<long> AppendAsync(IncrementalHash hash, Stream stream, long count, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            long total = 0;
            while (total < count)
            {
                var read = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, count - total)), cancellationToken);
                if (read == 0)
                {
                    break;
                }

                hash.AppendData(buffer, 0, read);
                total += read;
                progress?.Report(total);
            }

            return total;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static readonly SearchValues<char> HexDigits = SearchValues.Create("0123456789abcdefABCDEF");
}
