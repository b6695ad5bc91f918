using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Sovereign.Residency.Audit;

/// <summary>
/// The canonical, versioned serializations that are hashed and signed. They are length-prefixed binary (not JSON)
/// so an auditor can reimplement them in a few lines without JSON-escaping ambiguities. Primitives:
/// <list type="bullet">
/// <item><c>I64(x)</c>: 8 bytes, big-endian two's complement. <c>U32(n)</c>: 4 bytes, big-endian.</item>
/// <item><c>Str(s)</c>: <c>U32(byte length)</c> then the strict UTF-8 bytes (no BOM, no normalization).</item>
/// <item><c>Opt(x)</c>: one byte <c>0x00</c> when null, else <c>0x01</c> followed by the value.</item>
/// <item><c>H(h)</c>: the 32 raw bytes of a SHA-256 given as 64 lowercase hex digits.</item>
/// <item><c>List(xs)</c>: <c>U32(count)</c> then <c>Str</c> of each, in order.</item>
/// <item><c>Map(m)</c>: <c>U32(count)</c> then <c>Str(key) Str(value)</c>, keys sorted by their UTF-8 bytes.</item>
/// </list>
/// Entry v1: <c>SHA-256( Str("sovereign-audit-entry-v1") I64(sequence) H(previousHash) I64(timestamp) Str(kind)
/// Opt(Str tenant) Opt(Str keyId) Str(actor) Str(action) Opt(Str model) Opt(Str gateway) Opt(Str node)
/// Opt(Str jurisdiction) Opt(Str decision) Opt(Str decisionCode) List(reasons) Opt(I64 promptTokens)
/// Opt(I64 completionTokens) Map(details) )</c>, where kind is <c>admin</c>/<c>inference</c> and decision
/// <c>allowed</c>/<c>refused</c>.
/// Checkpoint v1 (ECDSA P-256, SHA-256, IEEE P1363 r||s, 64 bytes as hex): <c>Str("sovereign-audit-checkpoint-v1")
/// I64(sequence) H(hash) I64(timestamp) Str(keyId)</c>.
/// Export header v1 (same signature scheme): <c>Str("sovereign-audit-export-v1") Str(keyId) Opt(Str tenant)
/// I64(fromMs) I64(toMs) Opt(I64 firstSequence) Opt(I64 lastSequence) I64(createdAt)</c>.
/// Export header v2: the same under <c>Str("sovereign-audit-export-v2")</c>, followed by <c>H(entriesDigest)</c>, the
/// SHA-256 of <c>I64(sequence)</c> of every line shown in full, in order, so which lines are redacted is signed too.
/// </summary>
public static class AuditCanonical
{
    /// <summary>The entry format version stored with each row; verifiers refuse versions they do not know.</summary>
    public const int EntryFormatVersion = 1;

    /// <summary>The previous hash of entry 1.</summary>
    public static readonly string GenesisHash = new('0', 64);

    internal const string EntryDomain = "sovereign-audit-entry-v1";
    internal const string CheckpointDomain = "sovereign-audit-checkpoint-v1";
    internal const string ExportHeaderDomain = "sovereign-audit-export-v1";
    internal const string ExportHeaderDomainV2 = "sovereign-audit-export-v2";
    internal const string ExportHeaderDomainV3 = "sovereign-audit-export-v3";
    internal const string ExportHeaderDomainV4 = "sovereign-audit-export-v4";
    internal const string ArchiveDomain = "sovereign-audit-archive-v1";
    internal const string ChainDomain = "sovereign-audit-chain-v1";

    /// <summary>The most characters in a member chain's name.</summary>
    public const int MaxChainNameLength = 128;

    /// <summary>
    /// The previous hash of entry 1 of a chain: 64 zeros for the shared chain (null, every log before member chains),
    /// else SHA-256 of <c>Str("sovereign-audit-chain-v1") Str(name)</c>. A member chain's entries are thereby bound to
    /// its name: moved to another chain (or the chain renamed), its first entry no longer links.
    /// </summary>
    public static string GenesisOf(string? chain)
    {
        if (chain is null)
        {
            return GenesisHash;
        }

        var writer = new ArrayBufferWriter<byte>(64);
        WriteString(writer, ChainDomain);
        WriteString(writer, chain);
        return Convert.ToHexStringLower(SHA256.HashData(writer.WrittenSpan));
    }

    /// <summary>
    /// Whether <paramref name="chain"/> can name a member chain: 1 to <see cref="MaxChainNameLength"/> printable ASCII
    /// characters without spaces (a member id). The empty name is the shared chain's, never a member's.
    /// </summary>
    public static bool IsChainName(string? chain) =>
        chain is { Length: > 0 and <= MaxChainNameLength } && chain.All(static c => c is > ' ' and < (char)127);

    // Strict: a lone surrogate must fail rather than silently become U+FFFD (two strings, one hash).
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    // Each thread serializes into its own buffer, emptied after use: every append hashes and measures an entry, and a
    // fresh buffer each time was a few KiB of garbage per request. Serializing never awaits, so no other use interleaves.
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_entryBuffer;

    /// <summary>SHA-256 (lowercase hex) of the entry's canonical v1 serialization.</summary>
    public static string EntryHash(AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return EntryHash(entry, entry.Sequence, entry.Timestamp, entry.PreviousHash);
    }

    /// <summary>The hash <paramref name="entry"/> would have with these chain fields (the writer hashes before it copies).</summary>
    internal static string EntryHash(AuditEntry entry, long sequence, long timestamp, string previousHash)
    {
        var writer = EntryBuffer();
        try
        {
            WriteEntry(writer, entry, sequence, timestamp, previousHash);
            Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(writer.WrittenSpan, hash);
            return Convert.ToHexStringLower(hash);
        }
        finally
        {
            writer.ResetWrittenCount();
        }
    }

    /// <summary>The bytes an operator key signs for a checkpoint.</summary>
    public static byte[] CheckpointPayload(long sequence, string hash, long timestamp, string keyId)
    {
        var writer = new ArrayBufferWriter<byte>(128);
        WriteString(writer, CheckpointDomain);
        WriteInt64(writer, sequence);
        WriteHash(writer, hash);
        WriteInt64(writer, timestamp);
        WriteString(writer, keyId);
        return writer.WrittenSpan.ToArray();
    }

    /// <summary>What an archive record signs: "entries 1..sequence, ending in hash, were archived and may be removed".</summary>
    public static byte[] ArchivePayload(long sequence, string hash, long entries, long timestamp, string keyId)
    {
        var writer = new ArrayBufferWriter<byte>(128);
        WriteString(writer, ArchiveDomain);
        WriteInt64(writer, sequence);
        WriteHash(writer, hash);
        WriteInt64(writer, entries);
        WriteInt64(writer, timestamp);
        WriteString(writer, keyId);
        return writer.WrittenSpan.ToArray();
    }

    internal static byte[] ExportHeaderPayload(string keyId, string? tenant, long fromMs, long toMs, long? first, long? last, long createdAt) =>
        ExportHeaderPayload(keyId, tenant, fromMs, toMs, first, last, createdAt, null);

    /// <summary>
    /// The export header's signed bytes: v1 without <paramref name="entriesDigest"/>, v2 with it (the digest of the
    /// sequences shown in full, <see cref="ExportEntriesDigest"/>), so a v2 signature never verifies as v1.
    /// </summary>
    internal static byte[] ExportHeaderPayload(string keyId, string? tenant, long fromMs, long toMs, long? first, long? last, long createdAt, string? entriesDigest, int version = 2)
    {
        var writer = new ArrayBufferWriter<byte>(160);
        // Version 4 signs the same fields as version 2 under its own domain: its other tenants' runs are gap lines.
        WriteString(writer, entriesDigest is null ? ExportHeaderDomain : version == 4 ? ExportHeaderDomainV4 : ExportHeaderDomainV2);
        WriteString(writer, keyId);
        WriteOptionalString(writer, tenant);
        WriteInt64(writer, fromMs);
        WriteInt64(writer, toMs);
        WriteOptionalInt64(writer, first);
        WriteOptionalInt64(writer, last);
        WriteInt64(writer, createdAt);
        if (entriesDigest is not null)
        {
            WriteHash(writer, entriesDigest);
        }

        return writer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// The v3 (several chains) export header's signed bytes: <c>Str("sovereign-audit-export-v3") Str(keyId)
    /// Opt(Str tenant) I64(from) I64(to) I64(createdAt) U32(count)</c>, then per chain in file order <c>Opt(Str chain)
    /// Opt(I64 firstSequence) Opt(I64 lastSequence) Opt(H lastHash) H(entriesDigest) I64(coveredThrough)
    /// Opt(I64 uncoveredSince)</c>. Signing every chain's name with its last hash binds each section to its chain, and
    /// the list to "every chain the log held".
    /// </summary>
    internal static byte[] ClusterExportHeaderPayload(string keyId, string? tenant, long fromMs, long toMs, long createdAt, IReadOnlyList<AuditExportChain> chains)
    {
        var writer = new ArrayBufferWriter<byte>(256);
        WriteString(writer, ExportHeaderDomainV3);
        WriteString(writer, keyId);
        WriteOptionalString(writer, tenant);
        WriteInt64(writer, fromMs);
        WriteInt64(writer, toMs);
        WriteInt64(writer, createdAt);
        WriteUInt32(writer, checked((uint)chains.Count));
        foreach (var chain in chains)
        {
            WriteOptionalString(writer, chain.Chain);
            WriteOptionalInt64(writer, chain.FirstSequence);
            WriteOptionalInt64(writer, chain.LastSequence);
            WriteByte(writer, chain.LastHash is null ? (byte)0 : (byte)1);
            if (chain.LastHash is not null)
            {
                WriteHash(writer, chain.LastHash);
            }

            WriteHash(writer, chain.EntriesDigest);
            WriteInt64(writer, chain.CoveredThrough);
            WriteOptionalInt64(writer, chain.UncoveredSince);
        }

        return writer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Accumulates an export's <c>entriesDigest</c>: SHA-256 over <c>I64(sequence)</c> of each line shown in full, in
    /// file order. A redacted line says an entry existed, not whose; without this, anyone holding a tenant's export could
    /// turn the tenant's own entry into a redacted line and the chain, the header and the checkpoint still verified.
    /// </summary>
    internal sealed class ExportEntriesDigest : IDisposable
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        /// <summary>Adds a sequence shown in full.</summary>
        public void Add(long sequence)
        {
            Span<byte> bytes = stackalloc byte[8];
            BinaryPrimitives.WriteInt64BigEndian(bytes, sequence);
            _hash.AppendData(bytes);
        }

        /// <summary>The digest so far, as 64 lowercase hex digits.</summary>
        public string Finish() => Convert.ToHexStringLower(_hash.GetHashAndReset());

        /// <inheritdoc/>
        public void Dispose() => _hash.Dispose();
    }

    /// <summary>The canonical size of an entry, to bound what one append may store.</summary>
    internal static int EntrySize(AuditEntry entry)
    {
        var writer = EntryBuffer();
        try
        {
            WriteEntry(writer, entry, entry.Sequence, entry.Timestamp, entry.PreviousHash);
            return writer.WrittenCount;
        }
        finally
        {
            writer.ResetWrittenCount();
        }
    }

    /// <summary>This thread's serialization buffer; one that grew for an unusually large entry is not kept.</summary>
    private static ArrayBufferWriter<byte> EntryBuffer()
    {
        var buffer = t_entryBuffer;
        if (buffer is null || buffer.Capacity > 64 * 1024)
        {
            t_entryBuffer = buffer = new ArrayBufferWriter<byte>(2048);
        }

        return buffer;
    }

    internal static string KindName(AuditKind kind) => kind switch
    {
        AuditKind.Admin => "admin",
        AuditKind.Inference => "inference",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown audit kind."),
    };

    internal static bool TryParseKind(string? value, out AuditKind kind)
    {
        switch (value)
        {
            case "admin": kind = AuditKind.Admin; return true;
            case "inference": kind = AuditKind.Inference; return true;
            default: kind = default; return false;
        }
    }

    internal static string DecisionName(AuditDecision decision) => decision switch
    {
        AuditDecision.Allowed => "allowed",
        AuditDecision.Refused => "refused",
        _ => throw new ArgumentOutOfRangeException(nameof(decision), decision, "Unknown audit decision."),
    };

    internal static bool TryParseDecision(string? value, out AuditDecision? decision)
    {
        switch (value)
        {
            case null: decision = null; return true;
            case "allowed": decision = AuditDecision.Allowed; return true;
            case "refused": decision = AuditDecision.Refused; return true;
            default: decision = null; return false;
        }
    }

    /// <summary>64 lowercase hex digits: the only spelling of a hash that is stored, exported and hashed.</summary>
    internal static bool IsHash(string? value)
    {
        if (value is null || value.Length != 64)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Throws when a string cannot be encoded as strict UTF-8.</summary>
    internal static void EnsureEncodable(string? value, string name)
    {
        if (value is null)
        {
            return;
        }

        try
        {
            _ = StrictUtf8.GetByteCount(value);
        }
        catch (EncoderFallbackException ex)
        {
            throw new ArgumentException($"{name} is not valid Unicode (lone surrogate).", name, ex);
        }
    }

    private static void WriteEntry(IBufferWriter<byte> writer, AuditEntry entry, long sequence, long timestamp, string previousHash)
    {
        WriteString(writer, EntryDomain);
        WriteInt64(writer, sequence);
        WriteHash(writer, previousHash);
        WriteInt64(writer, timestamp);
        WriteString(writer, KindName(entry.Kind));
        WriteOptionalString(writer, entry.Tenant);
        WriteOptionalString(writer, entry.KeyId);
        WriteString(writer, entry.Actor);
        WriteString(writer, entry.Action);
        WriteOptionalString(writer, entry.Model);
        WriteOptionalString(writer, entry.Gateway);
        WriteOptionalString(writer, entry.Node);
        WriteOptionalString(writer, entry.Jurisdiction);
        WriteOptionalString(writer, entry.Decision is { } decision ? DecisionName(decision) : null);
        WriteOptionalString(writer, entry.DecisionCode);
        WriteUInt32(writer, checked((uint)entry.Reasons.Count));
        foreach (var reason in entry.Reasons)
        {
            WriteString(writer, reason);
        }

        WriteOptionalInt64(writer, entry.PromptTokens);
        WriteOptionalInt64(writer, entry.CompletionTokens);

        // Sorted by UTF-8 bytes (= code point order), not UTF-16 ordinal, so other languages sort the same way.
        var count = entry.Details.Count;
        var details = ArrayPool<KeyValuePair<string, string>>.Shared.Rent(count);
        try
        {
            var sorted = details.AsSpan(0, count);
            var i = 0;
            if (entry.Details is Dictionary<string, string> dictionary)
            {
                foreach (var pair in dictionary)
                {
                    sorted[i++] = pair;
                }
            }
            else
            {
                foreach (var pair in entry.Details)
                {
                    sorted[i++] = pair;
                }
            }

            sorted.Sort(static (a, b) => CompareCodePoints(a.Key, b.Key));
            WriteUInt32(writer, checked((uint)count));
            foreach (var (key, value) in sorted)
            {
                WriteString(writer, key);
                WriteString(writer, value);
            }
        }
        finally
        {
            ArrayPool<KeyValuePair<string, string>>.Shared.Return(details, clearArray: true);
        }
    }

    /// <summary>
    /// Orders strings by code point, as their UTF-8 bytes sort, without encoding them: UTF-16 differs from code point
    /// order only where a surrogate (a code point above U+FFFF) meets U+E000-U+FFFF, so those two ranges swap places.
    /// </summary>
    internal static int CompareCodePoints(string a, string b)
    {
        var length = Math.Min(a.Length, b.Length);
        for (var i = 0; i < length; i++)
        {
            if (a[i] != b[i])
            {
                return InCodePointOrder(a[i]) - InCodePointOrder(b[i]);
            }
        }

        return a.Length - b.Length;

        static int InCodePointOrder(char c) => c >= 0xE000 ? c - 0x800 : c >= 0xD800 ? c + 0x2000 : c;
    }

    private static void WriteString(IBufferWriter<byte> writer, string value)
    {
        var count = StrictUtf8.GetByteCount(value);
        WriteUInt32(writer, checked((uint)count));
        var span = writer.GetSpan(count);
        StrictUtf8.GetBytes(value, span);
        writer.Advance(count);
    }

    private static void WriteOptionalString(IBufferWriter<byte> writer, string? value)
    {
        WriteByte(writer, value is null ? (byte)0 : (byte)1);
        if (value is not null)
        {
            WriteString(writer, value);
        }
    }

    private static void WriteOptionalInt64(IBufferWriter<byte> writer, long? value)
    {
        WriteByte(writer, value is null ? (byte)0 : (byte)1);
        if (value is { } v)
        {
            WriteInt64(writer, v);
        }
    }

    private static void WriteHash(IBufferWriter<byte> writer, string hash)
    {
        if (!IsHash(hash))
        {
            throw new FormatException("A hash must be 64 lowercase hex digits.");
        }

        var span = writer.GetSpan(32);
        Convert.FromHexString(hash, span[..32], out _, out _);
        writer.Advance(32);
    }

    private static void WriteInt64(IBufferWriter<byte> writer, long value)
    {
        BinaryPrimitives.WriteInt64BigEndian(writer.GetSpan(8), value);
        writer.Advance(8);
    }

    private static void WriteUInt32(IBufferWriter<byte> writer, uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(writer.GetSpan(4), value);
        writer.Advance(4);
    }

    private static void WriteByte(IBufferWriter<byte> writer, byte value)
    {
        writer.GetSpan(1)[0] = value;
        writer.Advance(1);
    }
}
