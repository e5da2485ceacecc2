namespace Broker.Cluster;

/// <summary>
/// The Lua scripts the cluster runs in Redis: each one is atomic, so offsets, history and fan-out cannot
/// disagree (Centrifugo's Redis engine keeps a topic's epoch and top offset in a meta hash the same way).
/// Needs Redis 6.2 or newer (exclusive XRANGE, XAUTOCLAIM, XTRIM MINID).
/// </summary>
internal static class ClusterScripts
{
    /// <summary>
    /// Publishes to a topic: takes the next offset, appends to history (bounded by count, then by age), and
    /// publishes <c>offset:epoch:message</c> on the topic's channel, in that order and at once. A topic with no
    /// meta hash (never used, expired, or Redis lost its data) starts a new epoch, and any stale history goes.
    /// History entries are numbered by offset (<c>&lt;offset&gt;-0</c>) and carry their time (<c>t</c>, Redis's clock).
    /// KEYS: history, meta. ARGV: message, history size, history max age (ms), key ttl (ms), new epoch, channel.
    /// Returns the offset.
    /// </summary>
    public const string PublishTopic = """
        local epoch = redis.call('HGET', KEYS[2], 'e')
        if not epoch then
          epoch = ARGV[5]
          redis.call('DEL', KEYS[1])
          redis.call('HSET', KEYS[2], 'e', epoch, 'o', 0, 'b', 0)
        end
        local offset = redis.call('HINCRBY', KEYS[2], 'o', 1)
        local size = tonumber(ARGV[2])
        if size > 0 then
          local maxAge = tonumber(ARGV[3])
          local t = redis.call('TIME')
          local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
          redis.call('XADD', KEYS[1], 'MAXLEN', size, offset .. '-0', 't', now, 'd', ARGV[1])
          local cutoff = now - maxAge
          local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
          if tonumber(oldest[2][2]) < cutoff then
            -- Offsets in history have no holes: bisect for the first entry young enough, trim what is before it.
            local lo = tonumber(string.match(oldest[1], '^%d+'))
            local hi = offset
            while hi - lo > 1 do
              local mid = math.floor((lo + hi) / 2)
              local entry = redis.call('XRANGE', KEYS[1], mid, '+', 'COUNT', 1)[1]
              if tonumber(entry[2][2]) < cutoff then lo = mid else hi = mid end
            end
            redis.call('XTRIM', KEYS[1], 'MINID', hi)
          end
          redis.call('PEXPIRE', KEYS[1], maxAge)
        end
        redis.call('PEXPIRE', KEYS[2], ARGV[4])
        redis.call('PUBLISH', ARGV[6], offset .. ':' .. epoch .. ':' .. ARGV[1])
        return offset
        """;

    /// <summary>
    /// Reads a topic's position and the history after an offset. <c>b</c> is the offset the current epoch began
    /// after (0, or the offset where <see cref="BumpEpoch"/> changed it). When the caller's epoch is not the
    /// topic's, entries come from the epoch's beginning if asked for (a node catching up), else none (a resume
    /// that cannot be recovered). A topic with no meta hash gets one (a new epoch), so a subscriber always has a
    /// position to start from.
    /// KEYS: history, meta. ARGV: after offset (-1: position only), its epoch, '1' to read a new epoch from its
    /// beginning, most entries, history max age (ms), new epoch, key ttl (ms).
    /// Returns { epoch, last offset, epoch base, cutoff time (ms, 0 when no entries were read), entries }.
    /// </summary>
    public const string ReadTopic = """
        local epoch = redis.call('HGET', KEYS[2], 'e')
        if not epoch then
          epoch = ARGV[6]
          redis.call('DEL', KEYS[1])
          redis.call('HSET', KEYS[2], 'e', epoch, 'o', 0, 'b', 0)
          redis.call('PEXPIRE', KEYS[2], ARGV[7])
        end
        local top = tonumber(redis.call('HGET', KEYS[2], 'o'))
        local base = tonumber(redis.call('HGET', KEYS[2], 'b') or '0')
        local after = tonumber(ARGV[1])
        if epoch ~= ARGV[2] then
          if ARGV[3] ~= '1' then after = -1 else after = base end
        end
        if after < 0 or after >= top then return { epoch, top, base, 0, {} } end
        if after < base then after = base end
        local t = redis.call('TIME')
        local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[5])
        return { epoch, top, base, cutoff, redis.call('XRANGE', KEYS[1], '(' .. after .. '-0', '+', 'COUNT', ARGV[4]) }
        """;

    /// <summary>
    /// Gives a topic a new epoch, offsets going on, when this node delivered messages that never reached Redis
    /// (published while it was unreachable): no resume position from before can promise them.
    /// KEYS: meta. ARGV: the epoch to replace ('' for any), the new epoch.
    /// </summary>
    public const string BumpEpoch = """
        local epoch = redis.call('HGET', KEYS[1], 'e')
        if not epoch or (ARGV[1] ~= '' and epoch ~= ARGV[1]) then return 0 end
        redis.call('HSET', KEYS[1], 'e', ARGV[2], 'b', redis.call('HGET', KEYS[1], 'o'))
        return 1
        """;

    /// <summary>
    /// Adds a message to a queue's stream (dropping the oldest past the length limit) and tells the nodes that
    /// consume it. KEYS: stream, meta. ARGV: message, most messages, key ttl (ms), new epoch, group, channel.
    /// Returns how many messages the length limit dropped.
    /// </summary>
    public const string PublishQueue = """
        if redis.call('EXISTS', KEYS[1]) == 0 then
          redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[5], '0', 'MKSTREAM')
        end
        redis.call('HSETNX', KEYS[2], 'e', ARGV[4])
        local max = tonumber(ARGV[2])
        local before = redis.call('XLEN', KEYS[1])
        redis.call('XADD', KEYS[1], 'MAXLEN', max, '*', 'd', ARGV[1])
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        redis.call('PEXPIRE', KEYS[2], ARGV[3])
        redis.call('PUBLISH', ARGV[6], 'n')
        if before >= max then return before - max + 1 end
        return 0
        """;

    /// <summary>
    /// Makes sure a queue's stream, consumer group and epoch exist. KEYS: stream, meta. ARGV: new epoch, group,
    /// key ttl (ms). Returns the queue's epoch.
    /// </summary>
    public const string OpenQueue = """
        if redis.call('EXISTS', KEYS[1]) == 0 then
          redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[2], '0', 'MKSTREAM')
        else
          redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[2], '0')
        end
        redis.call('HSETNX', KEYS[2], 'e', ARGV[1])
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        redis.call('PEXPIRE', KEYS[2], ARGV[3])
        return redis.call('HGET', KEYS[2], 'e')
        """;

    /// <summary>
    /// Takes up to N messages for this node: first (when asked) deliveries idle longer than the redelivery
    /// timeout (their node died, or they were released), then new ones. KEYS: stream. ARGV: group, consumer,
    /// most entries, min idle (ms), '1' to take over idle deliveries. Returns the entries.
    /// </summary>
    public const string ReadQueue = """
        local want = tonumber(ARGV[3])
        local out = {}
        if ARGV[5] == '1' then
          local cursor = '0-0'
          for _ = 1, 10 do
            local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], cursor, 'COUNT', want - #out)
            for _, e in ipairs(r[2]) do
              if e[2] then out[#out + 1] = e end
            end
            cursor = r[1]
            if cursor == '0-0' or #out >= want then break end
          end
        end
        if #out < want then
          local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want - #out, 'STREAMS', KEYS[1], '>')
          if r then
            for _, e in ipairs(r[1][2]) do out[#out + 1] = e end
          end
        end
        return out
        """;

    /// <summary>Settles deliveries for good: acknowledged and removed. KEYS: stream. ARGV: group, ids.</summary>
    public const string AckQueue = """
        redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
        return redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
        """;

    /// <summary>
    /// Hands deliveries back to the cluster (NACK, or a consumer that left with nothing here to take them): they
    /// go to a consumer name no node reads as, made idle past the redelivery timeout, so the next node to read
    /// takes them over first; the consumers' nodes are told. KEYS: stream. ARGV: group, idle (ms), channel, ids.
    /// </summary>
    public const string ReleaseQueue = """
        local args = { 'XCLAIM', KEYS[1], ARGV[1], '~released', 0 }
        for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
        args[#args + 1] = 'IDLE'
        args[#args + 1] = ARGV[2]
        args[#args + 1] = 'JUSTID'
        redis.call(unpack(args))
        redis.call('PUBLISH', ARGV[3], 'r')
        return 1
        """;

    /// <summary>
    /// Renews this node's deliveries (so no other node takes them over while its consumers hold them) and the
    /// queue's expiry. KEYS: stream, meta. ARGV: group, consumer, key ttl (ms), most ids. Returns how many.
    /// </summary>
    public const string TouchQueue = """
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[4], ARGV[2])
        if #pending > 0 then
          local args = { 'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0 }
          for _, p in ipairs(pending) do args[#args + 1] = p[1] end
          args[#args + 1] = 'JUSTID'
          redis.call(unpack(args))
        end
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        redis.call('PEXPIRE', KEYS[2], ARGV[3])
        return #pending
        """;

    /// <summary>
    /// <c>max-away-sessions-per-user</c> across nodes: takes a user's oldest away sessions beyond the limit out of the
    /// user's away hash (<see cref="ClusterKeys.AwaySessions"/>, values <c>expiresAt\nnode\n…</c>; expired entries go
    /// too) and returns them, oldest first (by expiry, which is when each went away plus the TTL). Each one taken gets an
    /// "ended" marker (<see cref="ClusterKeys.AwayEnded"/>, expiring) so that a resume that loaded its record before
    /// cannot claim it after (<see cref="ClaimAway"/>). One HLEN when the user is within the limit; otherwise an HGETALL
    /// and a sort of the user's away sessions (at most nodes × limit, plus expired ones). The markers share the away
    /// hash's hash tag (same slot). KEYS: away hash. ARGV: limit, now (ms), marker key prefix, marker lifetime (ms).
    /// Returns id, value, id, value… of the sessions taken.
    /// </summary>
    public const string TakeAwayBeyond = """
        local max = tonumber(ARGV[1])
        if redis.call('HLEN', KEYS[1]) <= max then return {} end
        local now = tonumber(ARGV[2])
        local all = redis.call('HGETALL', KEYS[1])
        local kept = {}
        for i = 1, #all, 2 do
          local expires = tonumber(string.match(all[i + 1], '^%d+'))
          if expires == nil or expires <= now then
            redis.call('HDEL', KEYS[1], all[i])
          else
            kept[#kept + 1] = { expires, all[i], all[i + 1] }
          end
        end
        local over = #kept - max
        if over <= 0 then return {} end
        table.sort(kept, function(a, b) if a[1] ~= b[1] then return a[1] < b[1] end return a[2] < b[2] end)
        local taken = {}
        for i = 1, over do
          redis.call('HDEL', KEYS[1], kept[i][2])
          redis.call('SET', ARGV[3] .. kept[i][2], '1', 'PX', ARGV[4])
          taken[#taken + 1] = kept[i][2]
          taken[#taken + 1] = kept[i][3]
        end
        return taken
        """;

    /// <summary>
    /// A resume claims its session from the away directory: whoever removes the entry owns the session. Refused when
    /// <see cref="TakeAwayBeyond"/> took it first (its marker is there); else the entry (if any) is removed.
    /// KEYS: away hash, the session's ended marker. ARGV: session id. Returns 1 when claimed, 0 when refused.
    /// </summary>
    public const string ClaimAway = """
        if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
        redis.call('HDEL', KEYS[1], ARGV[1])
        return 1
        """;

    /// <summary>
    /// Takes one session out of the user's away hash to end it (this node's own <c>max-away-sessions-per-user</c>), as
    /// <see cref="TakeAwayBeyond"/> does: with an "ended" marker, and only when the entry is there (a resume on another
    /// node may have claimed it). KEYS: away hash, the session's ended marker. ARGV: session id, marker lifetime (ms).
    /// Returns 1 when taken, 0 when it was not there.
    /// </summary>
    public const string TakeAway = """
        if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
        redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
        return 1
        """;

    /// <summary>
    /// Puts back an entry <see cref="TakeAwayBeyond"/> took but that could not be ended, and lifts its marker, so the
    /// session resumes again as before (the next drop takes it again). KEYS: away hash, the session's ended marker.
    /// ARGV: session id, value, hash ttl (ms).
    /// </summary>
    public const string ReturnAway = """
        redis.call('DEL', KEYS[2])
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        return 1
        """;
}
