using System.Text;
using Sovereign.Inference.Engine;
using Xunit.Abstractions;

namespace Sovereign.Languages.Tests;

public sealed class LanguageTaxTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("hello", 5)]
    [InlineData("e\u0301te\u0301", 3)]
    [InlineData("हिन्दी", 3)]
    [InlineData("👍🏽 ok", 4)]
    public void CountCharacters_CombiningMarksAndSurrogates_CountedAsGraphemes(string text, int expected)
    {
        Assert.Equal(expected, LanguageTax.CountCharacters(text));
    }

    [Fact]
    public void Measure_Utf8ByteTokenizer_RatiosFollowBytesPerCharacter()
    {
        // A byte-level tokenizer: one token per UTF-8 byte, so Thai (3 bytes a code point, several code points to some graphemes) costs over twice English.
        var report = LanguageTax.Measure("bytes", t => Encoding.UTF8.GetByteCount(t), ["en", "th", "de", "or"]);

        Assert.Equal(1.0, report["en"]!.RatioToEnglish, 3);
        Assert.InRange(report["th"]!.RatioToEnglish, 2.5, 4.5);
        Assert.InRange(report["de"]!.RatioToEnglish, 1.0, 1.1);
        Assert.Equal(["or"], report.WithoutReferenceText);
        Assert.Equal(report.Entries.OrderByDescending(e => e.RatioToEnglish).Select(e => e.Language), report.Entries.Select(e => e.Language));
    }

    [Fact]
    public void Measure_EnglishNotRequested_StillMeasuredAsTheBase()
    {
        var report = LanguageTax.Measure("chars", t => t.Length, ["th"]);

        Assert.NotNull(report["en"]);
        Assert.Equal(report["en"]!.Tokens, ReferenceTexts.Get("en")!.Text.Length);
    }

    [Fact]
    public void Measure_LlamaTinyRandom_ThaiAndHindiCostMoreThanEnglish()
    {
        using var model = LlamaModel.Load(new ModelOptions { Id = "llama-2-tiny-random", Path = TestData.TinyRandomLlama2, Threads = 1 });

        var report = LanguageTax.Measure(model.Info.Id, t => model.Tokenize(t, addBos: false).Length);
        output.WriteLine(report.ToTable());

        Assert.Equal(56, report.Entries.Count);
        Assert.Equal(["or"], report.WithoutReferenceText);
        Assert.True(report["th"]!.RatioToEnglish > 1.0, $"Thai ratio {report["th"]!.RatioToEnglish}");
        Assert.True(report["hi"]!.RatioToEnglish > 1.0, $"Hindi ratio {report["hi"]!.RatioToEnglish}");
    }
}
