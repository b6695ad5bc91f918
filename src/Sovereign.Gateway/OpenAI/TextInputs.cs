using System.Text.Json;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// OpenAI's <c>input</c> parameter of text endpoints (embeddings, language detection): one string or an array of
/// strings, each read as valid Unicode, with precise 400s that name the item.
/// </summary>
internal static class TextInputs
{
    /// <param name="takesTokenIds">Whether the endpoint takes token ids too (then a later item that is not text is not of input[0]'s type).</param>
    public static List<string> Read(JsonElement? input, int maxInputs, bool allowEmpty, bool takesTokenIds = false)
    {
        if (input is not { } value || value.ValueKind == JsonValueKind.Null)
        {
            throw OpenAIException.BadRequest("You must provide an input parameter: a string or an array of strings.", "input", "missing_required_parameter");
        }

        if (value.ValueKind == JsonValueKind.String)
        {
            return [Text(value, "input", allowEmpty)];
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw OpenAIException.BadRequest("input must be a string or an array of strings.", "input", "invalid_type");
        }

        var count = value.GetArrayLength();
        if (count == 0 || count > maxInputs)
        {
            throw OpenAIException.BadRequest($"input must have between 1 and {maxInputs} items.", "input", "invalid_value");
        }

        var inputs = new List<string>(count);
        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw OpenAIException.BadRequest(
                    takesTokenIds
                        ? $"input[{i}] must be a string, as input[0] is: every item of input has the same type."
                        : $"input[{i}] must be a string; token-id inputs are not supported.",
                    $"input[{i}]", "invalid_type");
            }

            inputs.Add(Text(item, $"input[{i}]", allowEmpty));
            i++;
        }

        return inputs;
    }

    /// <summary>
    /// The embeddings endpoint's <c>input</c>: text as <see cref="Read"/> reads it, or token ids, as OpenAI and vLLM
    /// take them: an array of integers (one input) or an array of such arrays. Ids are checked here to be integers
    /// from 0 up and every input to be non-empty; against the model's vocabulary where the model is known.
    /// </summary>
    public static (List<string> Texts, List<int[]>? Tokens) ReadEmbeddingInput(JsonElement? input, int maxInputs)
    {
        if (input is not { ValueKind: JsonValueKind.Array } array || array.GetArrayLength() == 0 || array[0].ValueKind is not (JsonValueKind.Number or JsonValueKind.Array))
        {
            return (Read(input, maxInputs, allowEmpty: false, takesTokenIds: true), null);
        }

        if (array[0].ValueKind == JsonValueKind.Number)
        {
            return ([], [TokenIds(array, "input")]);
        }

        var count = array.GetArrayLength();
        if (count > maxInputs)
        {
            throw OpenAIException.BadRequest($"input must have between 1 and {maxInputs} items.", "input", "invalid_value");
        }

        var inputs = new List<int[]>(count);
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Array)
            {
                throw OpenAIException.BadRequest(
                    $"input[{i}] must be an array of token ids, as input[0] is: every item of input has the same type.", $"input[{i}]", "invalid_type");
            }

            inputs.Add(TokenIds(item, $"input[{i}]"));
            i++;
        }

        return ([], inputs);
    }

    /// <summary>Token ids: integers from 0 up, at least one. Whether the model knows each is its executor's check.</summary>
    public static int[] TokenIds(JsonElement array, string param)
    {
        var count = array.GetArrayLength();
        if (count == 0)
        {
            throw OpenAIException.BadRequest($"{param} must not be an empty array of token ids.", param, "invalid_value");
        }

        var tokens = new int[count];
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number)
            {
                throw OpenAIException.BadRequest(
                    $"{param}[{i}] must be a token id (an integer); an array of token ids holds only integers.", $"{param}[{i}]", "invalid_type");
            }

            if (!item.TryGetInt32(out var token) || token < 0)
            {
                throw OpenAIException.BadRequest($"{param}[{i}] must be a token id: an integer from 0 up.", $"{param}[{i}]", "invalid_value");
            }

            tokens[i++] = token;
        }

        return tokens;
    }

    /// <summary>The first id outside [0, <paramref name="vocabularySize"/>) as a 400 naming it, where the model is known.</summary>
    public static void RequireInVocabulary(IReadOnlyList<int[]> inputs, bool nested, string param, int vocabularySize, string model)
    {
        for (var i = 0; i < inputs.Count; i++)
        {
            for (var j = 0; j < inputs[i].Length; j++)
            {
                if ((uint)inputs[i][j] >= (uint)vocabularySize)
                {
                    var field = nested ? $"{param}[{i}][{j}]" : $"{param}[{j}]";
                    throw OpenAIException.BadRequest(
                        $"{field} is {inputs[i][j]}, which is not a token id of model '{model}' (0 to {vocabularySize - 1}).", field, "invalid_value");
                }
            }
        }
    }

    // GetString throws InvalidOperationException on a lone surrogate or invalid UTF-8 escaped into the string.
    private static string Text(JsonElement element, string param, bool allowEmpty)
    {
        string text;
        try
        {
            text = element.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw OpenAIException.BadRequest($"{param} is not valid Unicode text.", param, "invalid_value");
        }

        return allowEmpty || text.Length > 0 ? text : throw OpenAIException.BadRequest($"{param} must not be empty.", param, "invalid_value");
    }
}
