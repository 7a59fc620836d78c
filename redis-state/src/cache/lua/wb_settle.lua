-- Settle one write-behind entry: acknowledge and delete it, and when it
-- failed for good, copy it to the dead-letter stream first.
-- KEYS[1] stream, KEYS[2] dead-letter stream
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] 'dead' or 'done',
-- ARGV[4] error, ARGV[5] attempts, ARGV[6..] the entry's field/value pairs
if ARGV[3] == 'dead' then
  local args = {'XADD', KEYS[2], '*', 'origin', ARGV[2], 'error', ARGV[4], 'attempts', ARGV[5]}
  for i = 6, #ARGV do args[#args + 1] = ARGV[i] end
  redis.call(unpack(args))
end
local n = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return n
