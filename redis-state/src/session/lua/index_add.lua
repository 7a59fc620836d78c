-- Adds a session to its user's index and keeps the index bounded.
--
-- KEYS[1] the user's index: ZSET session id -> creation time (server ms)
-- ARGV[1] the session id, ARGV[2] the sessions' maximum lifetime (ms)
-- Entries older than the maximum lifetime are dropped (their sessions can no
-- longer be used); the index itself expires a maximum lifetime after the
-- user's newest session was created, so it outlives every usable session.
-- Returns the number of sessions in the index.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local life = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - life)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], life)
return redis.call('ZCARD', KEYS[1])
