--[[
Purpose: refresh the last-seen time of nodes, each only while its entry still belongs to the
session that heard it. The online flag is never set here: a node marked offline stays offline,
whatever heartbeat of its closed session is written after that.
KEYS[1]  the known nodes of one index chunk (all keys are that chunk's) (zset identity -> last seen ms)
KEYS[2]  the chunk's online nodes (zset identity -> last seen ms): refreshed for nodes still online
KEYS[2 + i]  the hash of the i-th node of the chunk (i = 1 .. n)
ARGV[3i - 2], ARGV[3i - 1], ARGV[3i]  the i-th node's identity, session id, and when it was
         heard (ms since the epoch)
Result:  one code per node: 1 refreshed, 0 entry gone, -1 owned by another session
]]
local seen, online, out = {}, {}, {}
for i = 1, #KEYS - 2 do
  local a = 3 * i - 2
  local h = redis.call('HMGET', KEYS[2 + i], 'session', 'online')
  if not h[1] then
    out[i] = 0
  elseif h[1] ~= ARGV[a + 1] then
    out[i] = -1
  else
    out[i] = 1
    redis.call('HSET', KEYS[2 + i], 'last_seen', ARGV[a + 2])
    seen[#seen + 1] = ARGV[a + 2]; seen[#seen + 1] = ARGV[a]
    if h[2] == '1' then online[#online + 1] = ARGV[a + 2]; online[#online + 1] = ARGV[a] end
  end
end
-- unpack() pushes every value on Lua's bounded stack: long argument lists go in chunks.
local function zadd(key, list)
  for i = 1, #list, 1000 do redis.call('ZADD', key, unpack(list, i, math.min(i + 999, #list))) end
end
zadd(KEYS[1], seen)
zadd(KEYS[2], online)
return out
