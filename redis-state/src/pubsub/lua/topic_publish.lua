-- A reliable topic's publish: the message is appended to the topic's capped
-- stream (id 0-<sequence>, the server numbering it), then published with its
-- sequence in front, so that a subscriber sees gaps and fills them from the
-- stream.
-- KEYS[1]: the topic's stream
-- ARGV[1]: the cap (MAXLEN ~), ARGV[2]: the channel, ARGV[3]: the payload,
-- ARGV[4]: '1' for a sharded channel (SPUBLISH)
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-*', 'm', ARGV[3])
local seq = string.sub(id, 3)
local verb = 'PUBLISH'
if ARGV[4] == '1' then
  verb = 'SPUBLISH'
end
local receivers = redis.call(verb, ARGV[2], seq .. ':' .. ARGV[3])
return {seq, receivers}
