using System.Text;
using System.Text.Json;
using LLama.Native;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Grammar;
using Sovereign.Inference.Sampling;
using Sovereign.Inference.Tools;

namespace Sovereign.Inference.Tests.Grammar;

/// <summary>
/// The managed grammar matcher (token trie, interned states, cached masks) against llama.cpp's grammar on the real
/// 32k Llama-2 vocabulary: at every step of a random walk through each grammar, the set of tokens it allows must be
/// exactly the set llama.cpp's full-vocabulary pass allows (less tokens that print nothing or break UTF-8).
/// </summary>
public sealed class GrammarMatcherTests : IDisposable
{
    private readonly LlamaModel _model = LlamaModel.Load(new ModelOptions { Id = "random", Path = TestModels.TinyRandomLlama2, Parallel = 1, ContextLength = 256, Threads = 1 });

    public static TheoryData<string> Grammars => new()
    {
        "person", "enums-anyof-arrays", "formats", "defs-and-refs", "recursive", "root-array", "map", "json_object", "tool-hermes",
        "handwritten", "unicode", "any-char",
    };

    // GBNF the compiler does not write, written to reach each construct of the syntax: *, +, ?, {m}, {m,}, {m,n},
    // negated classes, escapes, comments, multi-line groups, '.', and non-ASCII ranges (partial UTF-8 at token ends).
    private const string Handwritten = """
        root ::= ws ( item ( "," ws item )* )? "." # a comment
        item ::= [a-zA-Z_] [a-zA-Z0-9_]{0,5} | "\"" [^"\\\n]+ "\"" | num | "<" . ">"
        num ::= "-"? [0-9]+ (
            "." [0-9]{1,}
          )? ( "e" [0-9]{2} )?
        ws ::= [ \t]*
        """;

    private const string Unicode = """
        root ::= ( "é" [α-ω]{2,} | [^a-z\x00-\x7F] | "日本" ) ( " " root )?
        """;

    public void Dispose() => _model.Dispose();

    [Theory]
    [MemberData(nameof(Grammars))]
    public void AllowedTokens_EveryStepOfARandomWalk_EqualsLlamaCppsMask(string name)
    {
        var grammar = GrammarNamed(name);
        var model = _model.Weights.NativeHandle;
        var vocabulary = VocabularyTrie.For(model);
        var matcher = GrammarMatcher.For(grammar);
        Assert.NotNull(matcher);

        foreach (var seed in new[] { 1, 2 })
        {
            var random = new Random(seed);
            using var llama = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
            llama.AddGrammar(model.Vocab, grammar.Text, grammar.Root);
            var state = matcher.Start;
            var partial = default(Utf8Partial);
            var utf8 = default(Utf8Continuation);
            var ours = new ulong[(vocabulary.VocabularySize + 63) / 64];
            var text = new List<byte>();
            for (var step = 0; step < 100; step++)
            {
                var expected = LlamaCppAllowed(llama, vocabulary, utf8);
                matcher.AllowedTokens(state, partial, vocabulary, ours);
                var actual = Enumerable.Range(0, vocabulary.VocabularySize).Where(t => (ours[t >> 6] >> (t & 63) & 1) != 0).ToList();

                var missing = expected.Except(actual).Take(5).Select(t => Describe(vocabulary, t));
                var extra = actual.Except(expected).Take(5).Select(t => Describe(vocabulary, t));
                Assert.True(expected.SequenceEqual(actual),
                    $"{name} seed {seed} step {step} after '{Encoding.UTF8.GetString([.. text])}': missing [{string.Join(", ", missing)}], extra [{string.Join(", ", extra)}]");

                var choices = actual.Where(t => !vocabulary.EndOfGeneration.Contains(t)).ToList();
                if (choices.Count == 0)
                {
                    break;
                }

                // Half the steps take a one-byte token (structure, digits, raw UTF-8 bytes), so walks reach past the strings.
                var short1 = choices.Where(t => vocabulary.Pieces[t].Length == 1).ToList();
                var token = short1.Count > 0 && random.Next(2) == 0 ? short1[random.Next(short1.Count)] : choices[random.Next(choices.Count)];
                llama.Accept((LLamaToken)token);
                Assert.True(utf8.TryAppend(vocabulary.Pieces[token]));
                var next = matcher.Advance(state, partial, vocabulary.Pieces[token]);
                Assert.NotNull(next);
                (state, partial) = next.Value;
                text.AddRange(vocabulary.Pieces[token]);
            }
        }
    }

    [Fact]
    public void For_GrammarWithUnknownSyntax_IsNullSoSamplingUsesLlamaCppAlone()
    {
        Assert.Null(GrammarMatcher.For(new GbnfGrammar("root ::= <[42]>\n")));
        Assert.Null(GrammarMatcher.For(new GbnfGrammar("root ::= undefined-rule\n")));
        Assert.Null(GrammarMatcher.For(new GbnfGrammar("root ::= \"a\"{99999999999}\n")));
        Assert.Null(GrammarMatcher.For(new GbnfGrammar("root ::= \"a\"{0,20000}\n")));
        Assert.Null(GrammarMatcher.For(new GbnfGrammar("root ::= \"a\"{0,2000}\n"))); // llama.cpp cannot parse it either
        Assert.NotNull(GrammarMatcher.For(new GbnfGrammar("root ::= \"a\"{0,1999}\n")));
        Assert.Null(GrammarMatcher.For(new GbnfGrammar("root ::= root \"a\" | \"b\"\n")));
    }

    [Fact]
    public void Advance_FollowsTheGrammarByteByByte()
    {
        var matcher = GrammarMatcher.For(new GbnfGrammar("root ::= \"a\" [é-ê]{1,2} \"b\"? x\nx ::= \"!\" |\n"))!;
        var start = matcher.Start;

        Assert.False(start.CanEnd);
        Assert.Null(matcher.Advance(start, default, "b"u8));
        Assert.Null(matcher.Advance(start, default, "a\u00e8"u8.ToArray()));
        var (afterLead, partial) = matcher.Advance(start, default, [(byte)'a', 0xC3]).GetValueOrDefault();
        Assert.False(partial.IsEmpty);
        var done = matcher.Advance(afterLead, partial, [0xA9, (byte)'b']);
        Assert.NotNull(done);
        Assert.True(done.Value.State.CanEnd);
        Assert.NotNull(matcher.Advance(done.Value.State, done.Value.Partial, "!"u8));
        Assert.Null(matcher.Advance(done.Value.State, done.Value.Partial, "!!"u8));
    }

    private static List<int> LlamaCppAllowed(SafeLLamaSamplerChainHandle llama, VocabularyTrie vocabulary, Utf8Continuation utf8)
    {
        var data = new LLamaTokenData[vocabulary.VocabularySize];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = new LLamaTokenData((LLamaToken)i, 0, 0);
        }

        using (LLamaTokenDataArrayNative.Create(new LLamaTokenDataArray(data, false), out var native))
        {
            llama.Apply(ref native);
        }

        return [.. Enumerable.Range(0, data.Length).Where(i =>
            !float.IsNegativeInfinity(data[i].Logit) && vocabulary.IsEligible(i) && utf8.Allows(vocabulary.Pieces[i]))];
    }

    private static string Describe(VocabularyTrie vocabulary, int token) =>
        $"{token}:{Convert.ToHexString(vocabulary.Pieces[token])}";

    private static GbnfGrammar GrammarNamed(string name)
    {
        if (name == "handwritten")
        {
            return new GbnfGrammar(Handwritten);
        }

        if (name == "any-char")
        {
            return new GbnfGrammar("root ::= \"<\" . \">\" ( \" \" root )?\n");
        }

        if (name == "unicode")
        {
            return new GbnfGrammar(Unicode);
        }

        if (name == "json_object")
        {
            return JsonSchemaGrammarCompiler.AnyJsonObject();
        }

        if (name == "tool-hermes")
        {
            using var parameters = JsonDocument.Parse("""{"type":"object","properties":{"city":{"type":"string","maxLength":20},"days":{"type":"integer","minimum":1,"maximum":7}},"required":["city","days"]}""");
            return ToolCallSyntax.Grammar(ToolCallFormat.Hermes, [new ToolFunction("get_weather", parameters.RootElement.Clone()), new ToolFunction("noop", null)]);
        }

        var schema = ConstrainedGenerationTests.Schemas.Single(row => (string)row[0] == name)[1]!.ToString()!
            .Replace(""","maxProperties":0""", "", StringComparison.Ordinal);
        return JsonSchemaGrammarCompiler.Compile(JsonDocument.Parse(schema).RootElement);
    }
}
