using Sovereign.Gateway.Pipeline;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// Compute seconds of engines the gateway does not schedule: each request is billed its share of the engine's busy
/// time, so the shares add up to the time the engine worked, however many requests overlapped.
/// </summary>
public sealed class EngineOccupancyTests
{
    /// <summary>A clock whose timestamps move only when the test says (one tick is one microsecond).</summary>
    private sealed class SteppedClock : TimeProvider
    {
        public long Now { get; set; }

        public override long TimestampFrequency => 1_000_000;

        public override long GetTimestamp() => Now;

        public void Seconds(double at) => Now = (long)(at * 1_000_000);
    }

    [Fact]
    public void OverlappingRequests_ShareTheEnginesTime_AndTheSharesAddUpToItsBusyTime()
    {
        var clock = new SteppedClock();
        var occupancy = new EngineOccupancy(clock);

        // a alone for 1 s, a and b together for 2 s, b alone for 1 s, then idle 5 s, then c alone for 3 s.
        var a = occupancy.Enter("http://engine-1");
        clock.Seconds(1);
        var b = occupancy.Enter("http://engine-1");
        clock.Seconds(3);
        var shareA = a.Leave();
        clock.Seconds(4);
        var shareB = b.Leave();
        clock.Seconds(9);
        var c = occupancy.Enter("http://engine-1");
        clock.Seconds(12);
        var shareC = c.Leave();

        Assert.Equal(2.0, shareA, 9);
        Assert.Equal(2.0, shareB, 9);
        Assert.Equal(3.0, shareC, 9);
        Assert.Equal(7.0, shareA + shareB + shareC, 9);
    }

    [Fact]
    public void Engines_AreCountedApart_AndLeavingTwiceCountsOnce()
    {
        var clock = new SteppedClock();
        var occupancy = new EngineOccupancy(clock);

        var one = occupancy.Enter("http://engine-1");
        var two = occupancy.Enter("http://engine-2");
        clock.Seconds(2);
        Assert.Equal(2.0, one.Leave(), 9);
        clock.Seconds(5);
        Assert.Equal(2.0, one.Leave(), 9);
        one.Dispose();

        // engine-2 was alone in its engine all along, and one's stay ended once: the next request shares with nobody.
        var three = occupancy.Enter("http://engine-1");
        clock.Seconds(6);
        Assert.Equal(1.0, three.Leave(), 9);
        Assert.Equal(6.0, two.Leave(), 9);
    }
}
