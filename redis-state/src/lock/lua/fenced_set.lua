-- The resource side of fencing: writes a value only for a fencing token at
-- least as large as every token the resource has accepted before.
--
-- KEYS[1] the resource, KEYS[2] the highest token it accepted
-- ARGV[1] the writer's fencing token (decimal), ARGV[2] the value
-- Returns {1, token} when written, {0, highest token seen} when refused.
local function ge(a, b)
  -- decimal strings without sign or leading zeros, compared exactly (no
  -- detour through Lua's doubles)
  if #a ~= #b then return #a > #b end
  return a >= b
end
local seen = redis.call('GET', KEYS[2]) or '0'
if not ge(ARGV[1], seen) then
  return {0, seen}
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2])
return {1, ARGV[1]}
