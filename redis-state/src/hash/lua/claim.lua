-- Replaces a revoked reservation (compare-and-set on its stored text), or
-- releases one (random part '': deleted if it is still the given one).
--
-- KEYS[1] the reservation HASH
-- ARGV: value, expected entry, id, random part of a new token ('' : release)
-- Returns {'ok', token} or {'changed', holder} (another took it meanwhile;
-- holder '' after a release that found another entry or none).
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[4] == '' then
  if cur == ARGV[2] then
    redis.call('HDEL', KEYS[1], ARGV[1])
    return {'ok', ''}
  end
  return {'changed', ''}
end
if cur and cur ~= ARGV[2] then
  local holder, token = string.match(cur, '^(.*)|(%d+%.[^|]*)$')
  if holder == ARGV[3] then return {'ok', token} end
  return {'changed', holder or cur}
end
local t = redis.call('TIME')
local token = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)) .. '.' .. ARGV[4]
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. '|' .. token)
return {'ok', token}
