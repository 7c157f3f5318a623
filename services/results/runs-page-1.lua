--[[
Purpose: read the page of a runs index that follows a given run (or the first page), newest
first, within a score range, in one step, so runs created meanwhile (added at the top)
neither repeat nor hide entries. Order: score descending, then task id descending (ZREVRANGE).
KEYS[1]  the runs index (zset task id -> creation time in ms)
ARGV[1]  task id of the last run of the previous page; '' for the first page
ARGV[2]  that run's score (used when the run has left the index)
ARGV[3]  how many entries to return
ARGV[4]  the smallest score to return, inclusive, or '-inf'
ARGV[5]  the largest score to return, inclusive, or '+inf'
Result:  flat array task id, score, task id, score, ...
]]
local key, after, count = KEYS[1], ARGV[1], tonumber(ARGV[3])
local minArg, maxArg = ARGV[4], ARGV[5]
local min = tonumber(minArg) or -math.huge
if after == '' then
  return redis.call('ZREVRANGEBYSCORE', key, maxArg, minArg, 'WITHSCORES', 'LIMIT', 0, count)
end
local out = {}
local rank = redis.call('ZREVRANK', key, after)
if rank then
  local flat = redis.call('ZREVRANGE', key, rank + 1, rank + count, 'WITHSCORES')
  for i = 1, #flat, 2 do
    if tonumber(flat[i + 1]) < min then break end
    out[#out + 1] = flat[i]
    out[#out + 1] = flat[i + 1]
  end
  return out
end
-- The run left the index (swept): continue from its position, ties broken by task id.
local score = ARGV[2]
if tonumber(score) < min then return out end
local same = redis.call('ZRANGEBYSCORE', key, score, score)
for i = #same, 1, -1 do
  if #out >= 2 * count then break end
  if same[i] < after then
    out[#out + 1] = same[i]
    out[#out + 1] = score
  end
end
local left = count - #out / 2
if left > 0 then
  local rest = redis.call('ZREVRANGEBYSCORE', key, '(' .. score, minArg, 'WITHSCORES', 'LIMIT', 0, left)
  for i = 1, #rest do out[#out + 1] = rest[i] end
end
return out
