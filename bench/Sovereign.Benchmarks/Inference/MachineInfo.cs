using System.Runtime.InteropServices;
using System.Text;

namespace Sovereign.Benchmarks.Inference;

/// <summary>What the numbers were measured on.</summary>
internal sealed record MachineInfo(int Cores, string Cpu, long MemoryBytes, string Runtime, string Os, string NativeLibrary, string OmpWaitPolicy, string Commit, string LoadAtStart)
{
    public string Slug
    {
        get
        {
            var cpu = new StringBuilder();
            foreach (var c in Cpu.ToLowerInvariant())
            {
                cpu.Append(char.IsAsciiLetterOrDigit(c) ? c : '-');
            }

            var slug = string.Join('-', cpu.ToString().Split('-', StringSplitOptions.RemoveEmptyEntries).Where(p => p is not ("r" or "tm" or "cpu" or "processor")));
            return $"{Cores}c-{slug}";
        }
    }

    public static MachineInfo Collect(BenchOptions options)
    {
        var cpu = ReadField("/proc/cpuinfo", "model name") ?? RuntimeInformation.ProcessArchitecture.ToString();
        var memory = ReadField("/proc/meminfo", "MemTotal") is { } total ? long.Parse(total.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024 : 0;
        return new MachineInfo(
            Environment.ProcessorCount,
            cpu,
            memory,
            RuntimeInformation.FrameworkDescription,
            RuntimeInformation.OSDescription,
            $"{NativeSetup.LoadedLibrary} (--avx {options.Avx}; CPU extensions it does not use: {UnusedExtensions()})",
            Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "unset",
            GitDescription(),
            LoadAverage());
    }

    private static string UnusedExtensions()
    {
        var unused = Sovereign.Inference.Engine.NativeBuild.UnusedExtensions(Sovereign.Inference.Engine.NativeBuild.SystemInfo, Sovereign.Inference.Engine.NativeBuild.CpuFlags());
        return unused.Count == 0 ? "none" : string.Join(", ", unused);
    }

    /// <summary>1, 5 and 15 minute load averages: how busy the machine was with other work.</summary>
    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    /// <summary>The commit measured, and whether src/ had uncommitted changes.</summary>
    private static string GitDescription()
    {
        try
        {
            var root = RepositoryRoot();
            var commit = Git(root, "rev-parse", "--short", "HEAD").Trim();
            var dirty = Git(root, "status", "--porcelain", "--", "src").Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
            return commit.Length == 0 ? "unknown" : dirty == 0 ? commit : $"{commit} + uncommitted changes in {dirty} src/ paths";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown (no git)";
        }
    }

    private static string Git(string directory, params string[] args)
    {
        var start = new System.Diagnostics.ProcessStartInfo("git") { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = System.Diagnostics.Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0 ? output : "";
    }

    public string Describe() => FormattableString.Invariant(
        $"Machine: {Cores} cores, {Cpu}, {MemoryBytes / 1073741824.0:F1} GiB RAM, {Runtime}, {Os}; load average {LoadAtStart}\nllama.cpp: {NativeLibrary}; OMP_WAIT_POLICY={OmpWaitPolicy}; commit {Commit}");

    /// <summary>The folder holding Sovereign.slnx, searched upwards from the working directory (else the working directory).</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Sovereign.slnx")))
            {
                return dir.FullName;
            }
        }

        return Directory.GetCurrentDirectory();
    }

    /// <summary>Finds a relative path in the working directory or any folder above it (e.g. shared/models/x.gguf next to the repository).</summary>
    public static string? FindUpwards(string relative)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = System.IO.Path.Combine(dir.FullName, relative);
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    private static string? ReadField(string file, string key)
    {
        if (!File.Exists(file))
        {
            return null;
        }

        foreach (var line in File.ReadLines(file))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line[..colon].Trim() == key)
            {
                return line[(colon + 1)..].Trim();
            }
        }

        return null;
    }
}
