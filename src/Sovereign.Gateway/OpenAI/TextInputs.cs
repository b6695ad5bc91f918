using System.Text.Json;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// OpenAI's <c>input</c> parameter of text endpoints (embeddings, language detection): one string or an array of
/// strings, each read as valid Unicode, with precise 400s that name the item.
/// </summary>
internal static class TextInputs
{
    public static List<string> Read(JsonElement? input, int maxInputs, bool allowEmpty)
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
                throw OpenAIException.BadRequest($"input[{i}] must be a string; token-id inputs are not supported.", $"input[{i}]", "invalid_type");
            }

            inputs.Add(Text(item, $"input[{i}]", allowEmpty));
            i++;
        }

        return inputs;
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
