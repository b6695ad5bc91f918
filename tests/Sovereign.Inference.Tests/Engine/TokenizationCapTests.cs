using System.Text;
using Sovereign.Inference.Engine;

namespace Sovereign.Inference.Tests.Engine;

/// <summary>An over-long text is refused after a bounded amount of tokenizer work, whatever its size.</summary>
public sealed class TokenizationCapTests : IDisposable
{
    private const int EightMiB = 8 * 1024 * 1024;

    private readonly LlamaModel _stories = LlamaModel.Load(new ModelOptions { Id = "stories", Path = TestModels.Stories260K, ContextLength = 256, Threads = 1 });
    private readonly LlamaModel _llama2 = LlamaModel.Load(new ModelOptions { Id = "tiny-random", Path = TestModels.TinyRandomLlama2, ContextLength = 512, Threads = 1 });

    public void Dispose()
    {
        _stories.Dispose();
        _llama2.Dispose();
    }

    [Fact]
    public void EightMiBPrompt_IsRefusedByItsByteLength_WithoutTokenizing()
    {
        var prompt = Words(EightMiB);
        var before = _llama2.TokenizedCharacters;

        var ex = Assert.Throws<ContextLengthExceededException>(() => _llama2.TokenizeWithin(prompt, 511));

        Assert.Equal(0, _llama2.TokenizedCharacters - before);
        Assert.False(ex.IsExact);
        Assert.True(ex.CountedTokens > 511, ex.Message);
        Assert.Equal("prompt", ex.Parameter);
    }

    [Fact]
    public void ChatOfEightMiB_IsRefusedBeforeTheTemplateRendersIt()
    {
        var before = _stories.TokenizedCharacters;

        var ex = Assert.Throws<ContextLengthExceededException>(() => _stories.TokenizeChatWithin([new ChatTurn("user", Words(EightMiB))], 255));

        Assert.Equal(0, _stories.TokenizedCharacters - before);
        Assert.Equal("messages", ex.Parameter);
    }

    [Fact]
    public void MaxBytesPerToken_CoversEveryTokenOfTheLlama2Vocabulary()
    {
        // Byte-fallback tokens (<0x00>..<0xFF>) stand for one byte; the longest pieces are longer runs of text.
        var perToken = Assert.IsType<int>(_llama2.MaxBytesPerToken);

        Assert.InRange(perToken, 2, 64);
        foreach (var text in new[] { "Hello, world!", "สวัสดีครับ", "नमस्ते दुनिया", "🙂🙂🙂", "\u0001\u0002\u0003", new string(' ', 40), "<s></s>" })
        {
            var tokens = _llama2.Tokenize(text, addBos: false);
            Assert.True(Encoding.UTF8.GetByteCount(text) <= tokens.Length * perToken, $"'{text}': {tokens.Length} tokens, {perToken} bytes each at most");
        }
    }

    [Fact]
    public void TextJustOverTheByteBound_IsCountedInChunks_AndStopsEarly()
    {
        // Single letters separated by spaces: about one token per two bytes, so a text at the byte bound passes the
        // byte check, is longer than one chunk, and its tokens pass the limit within the first chunks.
        var bound = (255 + 2) * _llama2.MaxBytesPerToken!.Value;
        Assert.True(bound > 2 * TokenBudget.ChunkCharacters(255), $"bound {bound}");
        var prompt = string.Concat(Enumerable.Repeat("a b c d e f g h ", bound))[..bound];
        var before = _llama2.TokenizedCharacters;

        var ex = Assert.Throws<ContextLengthExceededException>(() => _llama2.TokenizeWithin(prompt, 255));

        var tokenized = _llama2.TokenizedCharacters - before;
        Assert.True(tokenized <= 2 * TokenBudget.ChunkCharacters(255), $"tokenized {tokenized} of {prompt.Length} characters");
        Assert.True(ex.CountedTokens > 255);
    }

    [Fact]
    public void TextThatFits_GetsExactlyTheTokensOfAWholeTokenization()
    {
        var prompt = "Once upon a time there was a little dog. " + string.Concat(Enumerable.Repeat("The dog ran. ", 10));

        Assert.Equal(_stories.Tokenize(prompt), _stories.TokenizeWithin(prompt, 255));
        Assert.Equal(_llama2.TokenizeChat([new ChatTurn("user", prompt)]), _llama2.TokenizeChatWithin([new ChatTurn("user", prompt)], 511));
    }

    [Fact]
    public void TextOneTokenOver_IsRefusedWithTheExactCount()
    {
        var prompt = "Once upon a time there was a little dog.";
        var count = _stories.Tokenize(prompt).Length;

        var ex = Assert.Throws<ContextLengthExceededException>(() => _stories.TokenizeWithin(prompt, count - 1));

        Assert.True(ex.IsExact);
        Assert.Equal(count, ex.CountedTokens);
        Assert.Equal(count, _stories.TokenizeWithin(prompt, count).Length);
    }

    [Fact]
    public void ChunkedCount_AsksTheTokenizerForFewChunks_OfAHugeText()
    {
        // A counter that sees no byte bound (like WordPiece, which drops whitespace): only chunking caps the work.
        var calls = 0;
        long characters = 0;
        int CountWords(string text)
        {
            calls++;
            characters += text.Length;
            return text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length + 2;
        }

        var text = Words(EightMiB);

        var ex = Assert.Throws<ContextLengthExceededException>(() => TokenBudget.CountWithin(text, 512, CountWords, "input[3]", "input"));

        Assert.InRange(calls, 1, 3);
        Assert.True(characters < 10 * TokenBudget.ChunkCharacters(512), $"{characters} characters counted");
        Assert.Contains("input[3]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ChunkedCount_OfATextThatFits_IsExact()
    {
        var text = string.Join(' ', Enumerable.Repeat("word", 3000));

        Assert.Equal(3002, TokenBudget.CountWithin(text, 5000, t => t.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length + 2));
    }

    [Theory]
    [InlineData(1000)]
    [InlineData(1500)]
    public void Chunks_CoverTheTextOnce_AndNeverSplitASurrogatePair(int size)
    {
        var text = string.Concat(Enumerable.Repeat("ab🙂c", 2000)) + string.Concat(Enumerable.Repeat("word ", 900));

        var ranges = TokenBudget.Chunks(text, size).ToList();

        Assert.Equal(text, string.Concat(ranges.Select(r => text[r])));
        Assert.All(ranges, r => Assert.False(char.IsHighSurrogate(text[r][^1])));
        Assert.All(ranges, r => Assert.InRange(text[r].Length, 1, size));
    }

    private static string Words(int characters)
    {
        var text = new StringBuilder(characters + 16);
        while (text.Length < characters)
        {
            text.Append("the little dog ran to the park ");
        }

        return text.ToString(0, characters);
    }
}
