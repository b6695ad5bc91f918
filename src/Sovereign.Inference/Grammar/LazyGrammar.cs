namespace Sovereign.Inference.Grammar;

/// <summary>
/// A grammar that waits for a trigger (llama.cpp calls it lazy): generation is free until the output shows one of
/// <see cref="Triggers"/>, and from the trigger's first byte on, the output is held to <see cref="Grammar"/> (the
/// trigger's own text included, so the grammar's sentences start with it). Used for the tool calls a model makes by
/// itself: free text, then a call in the model's syntax whose arguments follow the function's schema.
/// </summary>
/// <param name="Grammar">What the output must be from the trigger on; its sentences start with one of the triggers.</param>
/// <param name="Triggers">Texts that open the constrained part (a tool call's opening markers).</param>
/// <param name="AtStartOnly">
/// A trigger counts only where nothing but whitespace precedes it (formats whose calls are the whole answer, such as
/// Llama 3's JSON: text before the call makes the answer content, so nothing is worth constraining).
/// </param>
/// <param name="Rearm">
/// Once the grammar's sentence is complete, generation is free again and the triggers are watched for anew (Hermes:
/// text and further calls may follow a call); otherwise a complete sentence allows only the end of generation.
/// </param>
public sealed record LazyGrammar(GbnfGrammar Grammar, IReadOnlyList<string> Triggers, bool AtStartOnly, bool Rearm);
