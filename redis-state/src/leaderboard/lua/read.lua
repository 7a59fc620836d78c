-- Reads a run of consecutive entries of one board, with the rank of the first
-- one, so the client can rank the others by walking.
--
-- ARGV[6]  '1': include member data
-- ARGV[7]  what: 'rank' (ARGV[8] start, ARGV[9] stop: 0-based positions),
--          'around' (ARGV[8] member, ARGV[9] n),
--          'score' (ARGV[8] best bound, ARGV[9] worst bound, inclusive stored
--          values; ARGV[10] offset, ARGV[11] count, -1 for all)
-- Returns {position of the first entry, rank of the first entry, the range
-- (member, stored, member, stored, ...), the data of those members in order
-- or false}, or {-1, 0} when the range is empty ('around': when the member is
-- not on the board).
local k, d, n = K1, D1, N1
local with_data = DATA and ARGV[6] == '1'
local what = ARGV[7]
local items, pos
if what == 'rank' then
  local start, stop = tonumber(ARGV[8]), tonumber(ARGV[9])
  pos = start
  if HIGH then
    items = redis.call('ZREVRANGE', k, start, stop, 'WITHSCORES')
  else
    items = redis.call('ZRANGE', k, start, stop, 'WITHSCORES')
  end
elseif what == 'around' then
  local r
  if HIGH then r = redis.call('ZREVRANK', k, ARGV[8]) else r = redis.call('ZRANK', k, ARGV[8]) end
  if not r then return {-1, 0} end
  local around = tonumber(ARGV[9])
  pos = math.max(0, r - around)
  if HIGH then
    items = redis.call('ZREVRANGE', k, pos, r + around, 'WITHSCORES')
  else
    items = redis.call('ZRANGE', k, pos, r + around, 'WITHSCORES')
  end
else
  local best, worst = ARGV[8], ARGV[9]
  local offset, count = tonumber(ARGV[10]), tonumber(ARGV[11])
  if HIGH then
    items = redis.call('ZREVRANGEBYSCORE', k, best, worst, 'WITHSCORES', 'LIMIT', offset, count)
    pos = redis.call('ZCOUNT', k, '(' .. best, '+inf') + offset
  else
    items = redis.call('ZRANGEBYSCORE', k, best, worst, 'WITHSCORES', 'LIMIT', offset, count)
    pos = redis.call('ZCOUNT', k, '-inf', '(' .. best) + offset
  end
end
if #items == 0 then return {-1, 0} end
local first_rank
if MODE == 'o' or pos == 0 then
  first_rank = pos + 1
else
  first_rank = rank_of(k, n, items[1], tonumber(items[2]), items[2], pos)
end
-- The range reply is returned as it came (rebuilding it in Lua costs more
-- than the rest of the script).
local data = false
if with_data then
  -- The data of the members listed, in order (HMGET in chunks: Lua's unpack
  -- has a stack limit).
  local members = {}
  for i = 1, #items, 2 do members[#members + 1] = items[i] end
  if #members <= 500 then
    data = redis.call('HMGET', d, unpack(members))
  else
    data = {}
    local i = 1
    while i <= #members do
      local j = math.min(i + 499, #members)
      local vals = redis.call('HMGET', d, unpack(members, i, j))
      for x = 1, #vals do data[#data + 1] = vals[x] end
      i = j + 1
    end
  end
end
return {pos, first_rank, items, data}
