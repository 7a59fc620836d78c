-- effect.lua comes first.
-- Apply a Redis-resident effect and acknowledge the entry, atomically, once:
-- when the entry is no longer pending in the group (another consumer acked
-- it already), nothing is applied.
-- KEYS[1] stream, KEYS[2..] one key per effect command
-- ARGV[1] group, ARGV[2] entry id,
-- ARGV[3..] per command: name, number of arguments after the key, arguments
-- Returns 1 when applied and acknowledged, 0 when it was not pending.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 then
  return 0
end
apply_effect(3, 2)
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
