-- Queue a write-behind and store its entry in one atomic step: the entry is
-- written only once the bounded queue took the write (policy "error": a
-- full queue refuses the write and nothing is cached). Like `store`, a fill
-- in flight loaded an older value: its lease is revoked, and callers
-- waiting for it get this value.
-- KEYS[1] queue stream, KEYS[2] entry, KEYS[3] lease, KEYS[4] done stream
-- ARGV[1] the queue's bound, ARGV[2] envelope, ARGV[3] px,
-- ARGV[4] done stream ms, ARGV[5] the write's id, ARGV[6] its payload
-- (queued as the fields `id`, `key` (KEYS[2]) and `v`)
-- Returns the queued entry's id, or the error 'FULL <len>'.
local len = redis.call('XLEN', KEYS[1])
if len >= tonumber(ARGV[1]) then
  return redis.error_reply('FULL ' .. len)
end
local id = redis.call('XADD', KEYS[1], '*', 'id', ARGV[5], 'key', KEYS[2], 'v', ARGV[6])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= 'inv' then
  redis.call('DEL', KEYS[3])
  redis.call('XADD', KEYS[4], 'MAXLEN', '1', '*', 'v', ARGV[2])
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
  redis.call('PUBLISH', KEYS[4], '1')
end
return id
