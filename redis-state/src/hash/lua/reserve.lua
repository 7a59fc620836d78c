-- Unique values of the bucketed layout: a reservation per value, in the
-- slot of the value's own bucket. See `ops.rs` (`Reservations`) and the
-- design notes for the protocol.
--
-- KEYS[1] the reservation HASH: value -> "<id>|<token>", the token being
--         "<server ms>.<random hex>"
-- ARGV: value, id, random part of a new token, renew ('1': a reservation
--       of id's own is reported as held too, to be revoked and renewed)
-- Returns {'ok', token} (reserved now, or already id's) or
-- {'held', holder, token, entry} (entry: the stored text, for the claim).
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local holder, token = string.match(cur, '^(.*)|(%d+%.[^|]*)$')
  if not holder then holder, token = cur, '' end
  if holder == ARGV[2] and token ~= '' and ARGV[4] ~= '1' then return {'ok', token} end
  return {'held', holder, token, cur}
end
local t = redis.call('TIME')
local token = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)) .. '.' .. ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. token)
return {'ok', token}
