-- Reads a run of consecutive entries of one board, with the rank of the first
-- one, so the client can rank the others by walking.
--
-- ARGV[6]  '1': include member data
-- ARGV[7]  what: 'rank' (ARGV[8] start, ARGV[9] stop: 0-based positions),
--          'around' (ARGV[8] member, ARGV[9] n),
--          'score' (ARGV[8] best bound, ARGV[9] worst bound, inclusive stored
--          values; ARGV[10] offset, ARGV[11] count, -1 for all)
-- Returns {position of the first entry (-1 when none), rank of the first
-- entry, [member, stored, data] * n}; 'around' returns {-1, 0} when the member
-- is not on the board.
local k, d, n = board_keys(0)
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
  local r = position(k, ARGV[8])
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
  first_rank = rank_of(k, n, items[1], tonumber(items[2]), pos)
end
local out = {pos, first_rank}
local data = nil
if with_data then
  local members = {}
  for i = 1, #items, 2 do members[#members + 1] = items[i] end
  data = data_of(d, members)
end
for i = 1, #items, 2 do
  out[#out + 1] = items[i]
  out[#out + 1] = items[i + 1]
  if data then out[#out + 1] = data[(i + 1) / 2] else out[#out + 1] = false end
end
return out
