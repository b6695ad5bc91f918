using Sovereign.Inference.Grammar;
using Sovereign.Inference.Tools;

namespace Sovereign.Inference.Tests.Tools;

/// <summary>
/// The lazy grammars kept by their tools (<see cref="ToolCallSyntax.LazyCallGrammar"/>) are a bounded LRU: when full,
/// the grammar used longest ago goes. The cache cleared every grammar when it was full, so the 65th tool set in use
/// made all the others compile again (0.4-0.9 ms each on a request's thread), however often they were used.
/// </summary>
[Collection(LazyGrammarCacheCollection.Name)]
public sealed class LazyGrammarCacheTests
{
    [Fact]
    public void When_full_the_grammar_used_longest_ago_is_the_one_built_anew()
    {
        // The cache is the process's: these tools are this test's own, and the collection runs alone.
        var kept = Enumerable.Range(0, ToolCallSyntax.MaxCachedLazyGrammars).Select(Lazy).ToList();

        Assert.Same(kept[0], Lazy(0)); // used again: now the most recent
        Lazy(ToolCallSyntax.MaxCachedLazyGrammars); // one more: the least recently used (1) goes

        Assert.Same(kept[0], Lazy(0));
        Assert.Same(kept[2], Lazy(2));
        Assert.Same(kept[^1], Lazy(ToolCallSyntax.MaxCachedLazyGrammars - 1));
        Assert.NotSame(kept[1], Lazy(1));
    }

    private static LazyGrammar Lazy(int index) =>
        ToolCallSyntax.LazyCallGrammar(ToolCallFormat.Hermes, [new ToolFunction($"lru_tool_{index}", null)], parallel: false);
}

/// <summary>Tests of the process-wide grammar cache run alone, so no other test's grammars change its order.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LazyGrammarCacheCollection
{
    public const string Name = "lazy grammar cache";
}
