using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;
using Broker.Benchmarks.Load;
using Broker.Protocol;

namespace Broker.Benchmarks.Attack;

/// <summary>What the attackers did and got back, shared by all their connections (Interlocked counters).</summary>
internal sealed partial class AttackStats(long count)
{
    private long _ops;
    private long _connections;
    private long _receipts;

    /// <summary>ERROR frames by message, and connection failures by exception message.</summary>
    public ConcurrentDictionary<string, long> Errors { get; } = new(StringComparer.Ordinal);

    public ConcurrentDictionary<string, long> Failures { get; } = new(StringComparer.Ordinal);

    public long Ops => Interlocked.Read(ref _ops);

    public long Connections => Interlocked.Read(ref _connections);

    public long Receipts => Interlocked.Read(ref _receipts);

    /// <summary>True once the attackers did <c>--count</c> operations.</summary>
    public bool CountReached => Ops >= count;

    public void Done(long ops) => Interlocked.Add(ref _ops, ops);

    public void Connected() => Interlocked.Increment(ref _connections);

    public void Receipt() => Interlocked.Increment(ref _receipts);

    public void Error(string message) => Errors.AddOrUpdate(message, 1, static (_, n) => n + 1);

    public void Failure(Exception e) => Failures.AddOrUpdate($"{e.GetType().Name}: {e.Message}", 1, static (_, n) => n + 1);

    /// <summary>The limits the ERRORs named, as <c>name:count,...</c> (<c>-</c> when none).</summary>
    public string LimitsNamed()
    {
        var byLimit = Errors.GroupBy(e => LimitName(e.Key)).Select(g => $"{g.Key}:{g.Sum(e => e.Value)}").Order(StringComparer.Ordinal).ToArray();
        return byLimit.Length > 0 ? string.Join(',', byLimit) : "-";
    }

    /// <summary>The limit an ERROR message names (<c>max-…</c>, <c>memory-limit</c>), or <c>other</c>.</summary>
    public static string LimitName(string message) => LimitPattern().Match(message) is { Success: true } m ? m.Value : "other";

    [GeneratedRegex(@"\b(max-[a-z-]+[a-z]|memory-limit)\b")]
    private static partial Regex LimitPattern();

    public static string ErrorMessage(StompFrame frame) => frame.GetString("message"u8) ?? Encoding.UTF8.GetString(frame.Body);
}

/// <summary>
/// Reads an attacker's replies: counts RECEIPTs and records ERRORs; stops at the first RECEIPT or ERROR
/// (<see cref="StopAtReply"/>) or reads on to the end of the connection.
/// </summary>
internal sealed class AttackReplies(AttackStats stats, bool stopAtReply) : FrameHandler
{
    public bool StopAtReply { get; } = stopAtReply;

    public bool GotError { get; private set; }

    public override bool OnFrame(StompFrame frame)
    {
        switch (frame.Command)
        {
            case StompCommand.Receipt:
                stats.Receipt();
                return !StopAtReply;
            case StompCommand.Error:
                stats.Error(AttackStats.ErrorMessage(frame));
                GotError = true;
                return false;
            default:
                return true;
        }
    }
}
