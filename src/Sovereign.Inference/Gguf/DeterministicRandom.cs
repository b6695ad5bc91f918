// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Numerics;
using System.Text;

namespace Sovereign.Inference.Gguf;

/// <summary>
/// xoshiro256** seeded through SplitMix64. Our own implementation rather than <see cref="Random"/>, whose algorithm
/// is not a documented contract: synthetic models must stay byte-identical across .NET versions and machines.
/// Only integer arithmetic and exactly-rounded double operations are used, so results do not depend on the CPU.
/// </summary>
internal sealed class DeterministicRandom
{
    // Irwin-Hall: four 16-bit uniforms summed have mean 4 * 32767.5 and variance 4 * (65536^2 - 1) / 12.
    private const double IrwinHallMean = 4 * 32767.5;
    private static readonly double IrwinHallInverseStdDev = 1.0 / Math.Sqrt(4.0 * ((65536.0 * 65536.0) - 1.0) / 12.0);

    private ulong _s0;
    private ulong _s1;
    private ulong _s2;
    private ulong _s3;

    public DeterministicRandom(ulong seed)
    {
        var state = seed;
        _s0 = SplitMix64(ref state);
        _s1 = SplitMix64(ref state);
        _s2 = SplitMix64(ref state);
        _s3 = SplitMix64(ref state);
    }

    /// <summary>A generator for one named stream (e.g. one tensor), independent of the order streams are used in.</summary>
    public static DeterministicRandom ForStream(ulong seed, string streamName)
    {
        var mixed = seed ^ Fnv1a64(streamName);
        return new DeterministicRandom(SplitMix64(ref mixed));
    }

    public ulong NextUInt64()
    {
        var result = BitOperations.RotateLeft(_s1 * 5, 7) * 9;
        var t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = BitOperations.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>
    /// An approximately standard-normal value (sum of four uniforms, bounded to about ±3.5): close enough to a
    /// Gaussian for random weights, and free of log/sin/cos whose last bits can differ between math libraries.
    /// </summary>
    public double NextNormal()
    {
        var bits = NextUInt64();
        var sum = (bits & 0xFFFF) + ((bits >> 16) & 0xFFFF) + ((bits >> 32) & 0xFFFF) + (bits >> 48);
        return (sum - IrwinHallMean) * IrwinHallInverseStdDev;
    }

    private static ulong SplitMix64(ref ulong state)
    {
        state += 0x9E3779B97F4A7C15UL;
        var z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong Fnv1a64(string text)
    {
        var hash = 0xCBF29CE484222325UL;
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            hash = (hash ^ b) * 0x100000001B3UL;
        }

        return hash;
    }
}
