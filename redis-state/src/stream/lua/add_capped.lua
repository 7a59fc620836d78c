-- Add an entry to a stream whose trimming respects consumer groups: the
-- stream is not trimmed here, so it is bounded by a hard cap instead.
-- KEYS[1] stream
-- ARGV[1] cap, ARGV[2..] field/value pairs
-- Returns the new entry id, or the error 'FULL <len>' when the stream holds
-- `cap` entries already.
local len = redis.call('XLEN', KEYS[1])
if len >= tonumber(ARGV[1]) then
  return redis.error_reply('FULL ' .. len)
end
local args = {'XADD', KEYS[1], '*'}
for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
return redis.call(unpack(args))
