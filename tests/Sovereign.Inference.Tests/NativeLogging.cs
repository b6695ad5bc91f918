using System.Runtime.CompilerServices;
using LLama.Native;

namespace Sovereign.Inference.Tests;

/// <summary>Keeps llama.cpp's informational logging out of the test output; warnings and errors still show.</summary>
internal static class NativeLogging
{
    [ModuleInitializer]
    internal static void Initialize() =>
        NativeLogConfig.llama_log_set((level, message) =>
        {
            if (level is LLamaLogLevel.Warning or LLamaLogLevel.Error)
            {
                Console.Error.Write(message);
            }
        });
}
