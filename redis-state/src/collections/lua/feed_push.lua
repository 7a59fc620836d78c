-- Pushes entries on a capped list, trims it to its cap and renews its TTL,
-- atomically (the seed's LPUSH + LTRIM + EXPIRE as one step). Stops at the
-- first error, so a key of another type keeps its TTL.
--
-- KEYS[1] the list
-- ARGV[1] the cap, ARGV[2] the TTL in ms (0: leave the TTL alone),
-- ARGV[3..] the entries, oldest first (the newest ends up at index 0)
-- Returns the length after trimming.
local n = 0
for i = 3, #ARGV, 500 do
  n = redis.call('LPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
if #ARGV < 3 then n = redis.call('LLEN', KEYS[1]) end
local cap = tonumber(ARGV[1])
if n > cap then
  redis.call('LTRIM', KEYS[1], 0, cap - 1)
  n = cap
end
if ARGV[2] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
