using System.Diagnostics;
using System.Globalization;
using System.Text;
using Sovereign.Benchmarks.Inference;
using Sovereign.Inference.Engine;

namespace Sovereign.Benchmarks.Hostile;

/// <summary>
/// What refusing an over-long prompt costs. Baseline (the old path): tokenize the whole prompt, then compare its
/// length with the context. Capped: <see cref="LlamaModel.TokenizeWithin"/> (byte bound, then chunked counting that
/// stops early), and the chunked counting alone (what a vocabulary without a byte bound, e.g. WordPiece, gets).
/// Model: the real 32k Llama-2 vocabulary (llama-2-tiny-random.gguf); prompts are English words.
/// </summary>
public static class PromptCapBenchmark
{
    /// <summary>Command-line help.</summary>
    public const string Usage = "prompt-cap [--sizes KiB[,KiB...] (64,1024,8192)] [--context N (4096)] [--repeat R (3)] [--model PATH]";

    /// <summary>Runs the benchmark and prints a report; returns the process exit code.</summary>
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        int[] sizes = [64, 1024, 8192];
        var context = 4096;
        var repeat = 3;
        string? path = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--sizes": sizes = [.. args[++i].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))]; break;
                case "--context": context = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--repeat": repeat = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--model": path = args[++i]; break;
                default: throw new ArgumentException($"prompt-cap: unknown option '{args[i]}'");
            }
        }

        path ??= MachineInfo.FindUpwards(Path.Combine("shared", "models", "llama-2-tiny-random.gguf"))
            ?? throw new ArgumentException("prompt-cap: llama-2-tiny-random.gguf not found; pass --model PATH");
        using var model = LlamaModel.Load(new ModelOptions { Id = "tiny-random", Path = path, ContextLength = context, Threads = 1 });
        var maxTokens = context - 1;
        Console.WriteLine($"prompt-cap: {Environment.ProcessorCount} cores, context {context}, max bytes per token {model.MaxBytesPerToken}, best of {repeat}");
        Console.WriteLine("| prompt | whole tokenization, then check (baseline) | TokenizeWithin (capped) | ratio | chunked count only | ratio |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var kib in sizes)
        {
            var prompt = Words(kib * 1024);
            var baseline = Best(repeat, () => _ = model.Tokenize(prompt).Length > maxTokens);
            var capped = Best(repeat, () => Refused(() => model.TokenizeWithin(prompt, maxTokens)));
            var chunked = Best(repeat, () => Refused(() => TokenBudget.CountWithin(prompt, maxTokens, t => model.Tokenize(t).Length)));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {kib} KiB | {baseline:F2} ms | {capped:F3} ms | {baseline / capped:F0}x faster | {chunked:F2} ms | {baseline / chunked:F0}x faster |"));
        }

        return 0;
    }

    private static void Refused(Action tokenize)
    {
        try
        {
            tokenize();
            throw new InvalidOperationException("The prompt was not refused: pick larger --sizes or a smaller --context.");
        }
        catch (ContextLengthExceededException)
        {
        }
    }

    private static double Best(int repeat, Action action)
    {
        var best = double.MaxValue;
        for (var i = 0; i < repeat; i++)
        {
            var watch = Stopwatch.StartNew();
            action();
            best = Math.Min(best, watch.Elapsed.TotalMilliseconds);
        }

        return best;
    }

    private static string Words(int characters)
    {
        var text = new StringBuilder(characters + 64);
        var words = new[] { "the", "little", "dog", "ran", "to", "park", "and", "found", "a", "red", "ball", "under", "tree." };
        var random = new Random(7);
        while (text.Length < characters)
        {
            text.Append(words[random.Next(words.Length)]).Append(' ');
        }

        return text.ToString(0, characters);
    }
}
