-- Changes fields of an existing hash session and slides its expiry; never
-- creates a partial session.
--
-- KEYS[1] the session
-- ARGV[1] the idle TTL (ms), ARGV[2] 'replace' or 'patch', ARGV[3] n,
-- ARGV[4 .. 3+2n] field, value pairs to set, then the fields to remove.
-- 'replace' also removes every field not set, except user_id and created_at.
-- Returns 1 when written, 0 when there is no session.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = tonumber(ARGV[3])
if ARGV[2] == 'replace' then
  local keep = {user_id = true, created_at = true}
  for i = 0, n - 1 do keep[ARGV[4 + 2 * i]] = true end
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if not keep[f] then redis.call('HDEL', KEYS[1], f) end
  end
end
-- In chunks of 500 pairs (Lua's unpack has a stack limit of about 8,000).
local last = 3 + 2 * n
for i = 4, last, 1000 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, last)))
end
for i = last + 1, #ARGV, 1000 do
  redis.call('HDEL', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
