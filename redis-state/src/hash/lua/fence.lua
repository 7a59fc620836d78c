-- Revokes the reservation token of a holder that does not hold the value,
-- atomically in the holder's bucket (the slot its writes check tokens in).
--
-- KEYS[1] the holder's entity, KEYS[2] its bucket's fence ZSET (token ->
-- server ms when revoked)
-- ARGV: field, value, token ('' : nothing to revoke), keep_ms
-- Returns 'held' (the holder holds the value: nothing revoked) or 'revoked'.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 'held' end
if ARGV[3] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  -- revocations outlive any write that could still present their token
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%d', now - tonumber(ARGV[4])))
  redis.call('ZADD', KEYS[2], now, ARGV[3])
end
return 'revoked'
