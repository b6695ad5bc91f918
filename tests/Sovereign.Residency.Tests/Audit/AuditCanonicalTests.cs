using Sovereign.Residency.Audit;

namespace Sovereign.Residency.Tests.Audit;

public sealed class AuditCanonicalTests
{
    private static readonly AuditEntry Vector = new()
    {
        Sequence = 42,
        Timestamp = 1735689600123,
        Kind = AuditKind.Inference,
        Tenant = "acme",
        KeyId = "key-1",
        Actor = "key-1",
        Action = AuditActions.InferenceAllowed,
        Model = "llama",
        Gateway = "gw-1",
        Node = "node-1",
        Jurisdiction = "DE",
        Decision = AuditDecision.Allowed,
        DecisionCode = "ok",
        Reasons = ["eu-only", "größe"],
        PromptTokens = 12,
        CompletionTokens = null,
        Details = new Dictionary<string, string> { ["b"] = "2", ["a"] = "1", ["é"] = "x", ["\U0001F600"] = "emoji", ["\uFB01"] = "ligature" },
        PreviousHash = string.Concat(Enumerable.Repeat("ab", 32)),
        Hash = string.Empty,
    };

    [Fact]
    public void EntryHash_PinnedVector_MatchesTheDocumentedFormat()
    {
        // Computed by an independent implementation of the format documented on AuditCanonical (Python, hashlib).
        // If this changes, every stored chain stops verifying: bump the format version instead.
        Assert.Equal("67df0b6c321662e3d4fc930869c307d85dde42aedb0bec0c5171ce98b6ac7e1f", AuditCanonical.EntryHash(Vector));
    }

    [Fact]
    public void CompareCodePoints_OrdersAsUtf8Bytes_OnSeededRandomStrings()
    {
        // Details are sorted by their UTF-8 bytes without being encoded: the two orders must agree on every pair.
        var random = new Random(20261203);
        int[] starts = [0x20, 0x7F, 0x800, 0xD7F0, 0xE000, 0xFFF0, 0x10000, 0x10FF00];
        string Next()
        {
            var text = new System.Text.StringBuilder();
            for (var n = random.Next(0, 5); n > 0; n--)
            {
                text.Append(char.ConvertFromUtf32(starts[random.Next(starts.Length)] + random.Next(0, 16)));
            }

            return text.ToString();
        }

        for (var i = 0; i < 20_000; i++)
        {
            var (a, b) = (Next(), Next());
            var bytes = System.Text.Encoding.UTF8.GetBytes(a).AsSpan().SequenceCompareTo(System.Text.Encoding.UTF8.GetBytes(b));
            Assert.True(Math.Sign(bytes) == Math.Sign(AuditCanonical.CompareCodePoints(a, b)), $"'{a}' vs '{b}'");
        }
    }

    [Fact]
    public void EntryHash_DetailsInsertionOrder_DoesNotMatter()
    {
        var reversed = Vector with { Details = Vector.Details.Reverse().ToDictionary(p => p.Key, p => p.Value) };

        Assert.Equal(AuditCanonical.EntryHash(Vector), AuditCanonical.EntryHash(reversed));
    }

    [Fact]
    public void EntryHash_AnyFieldChanged_ChangesTheHash()
    {
        var variants = new[]
        {
            Vector with { Sequence = 43 },
            Vector with { Timestamp = 1735689600124 },
            Vector with { Kind = AuditKind.Admin },
            Vector with { Tenant = "acmf" },
            Vector with { Tenant = null },
            Vector with { KeyId = "key-2" },
            Vector with { Actor = "key-2" },
            Vector with { Action = AuditActions.InferenceRefused },
            Vector with { Model = "llamb" },
            Vector with { Gateway = "gw-2" },
            Vector with { Node = "" },
            Vector with { Jurisdiction = "FR" },
            Vector with { Decision = AuditDecision.Refused },
            Vector with { Decision = null },
            Vector with { DecisionCode = "no" },
            Vector with { Reasons = ["größe", "eu-only"] },
            Vector with { Reasons = ["eu-onlygröße"] },
            Vector with { PromptTokens = 13 },
            Vector with { CompletionTokens = 0 },
            Vector with { Details = new Dictionary<string, string> { ["a"] = "1" } },
            Vector with { Details = new Dictionary<string, string> { ["ab"] = "" } },
            Vector with { PreviousHash = AuditCanonical.GenesisHash },
        };

        var hashes = variants.Select(AuditCanonical.EntryHash).Append(AuditCanonical.EntryHash(Vector)).ToList();

        Assert.Equal(hashes.Count, hashes.Distinct().Count());
    }

    [Fact]
    public void EntryHash_UppercasePreviousHash_IsRejected()
    {
        Assert.Throws<FormatException>(() => AuditCanonical.EntryHash(Vector with { PreviousHash = Vector.PreviousHash.ToUpperInvariant() }));
    }

    [Fact]
    public void CheckpointPayload_IsTheDocumentedBytes()
    {
        var payload = AuditCanonical.CheckpointPayload(7, AuditCanonical.GenesisHash, 1, "0123456789abcdef");

        var expected = new List<byte>();
        expected.AddRange([0, 0, 0, 29]);
        expected.AddRange("sovereign-audit-checkpoint-v1"u8.ToArray());
        expected.AddRange([0, 0, 0, 0, 0, 0, 0, 7]);
        expected.AddRange(new byte[32]);
        expected.AddRange([0, 0, 0, 0, 0, 0, 0, 1]);
        expected.AddRange([0, 0, 0, 16]);
        expected.AddRange("0123456789abcdef"u8.ToArray());
        Assert.Equal(expected, payload);
    }
}
