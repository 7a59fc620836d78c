-- Adds a member to a time window (a sorted set scored by epoch seconds),
-- drops what fell out of the window or past the cap, and renews the TTL,
-- atomically. The oldest members are the lowest ranks, so both trims are
-- one ZREMRANGEBYRANK of at most 512 members per call (bounded work; the
-- reads filter by the cutoff, so a trim left for the next call is never
-- seen).
--
-- KEYS[1] the sorted set
-- ARGV[1] the member's time (seconds), ARGV[2] the member,
-- ARGV[3] the cutoff (seconds; members at or before it are out),
-- ARGV[4] the cap, ARGV[5] the TTL in ms
-- Returns the number of members after trimming.
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
local drop = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[3])
local over = n - tonumber(ARGV[4])
if over > drop then drop = over end
if drop > 512 then drop = 512 end
if drop > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, drop - 1)
  n = n - drop
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return n
