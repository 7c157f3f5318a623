--[[
Purpose: mark offline the nodes a dead replica still held (those that have not reconnected
elsewhere meanwhile: their `owner` is still that replica), and take them out of its owner bitmap.
KEYS[1]  the online nodes of one index chunk (all keys are that chunk's) (zset identity -> last seen ms)
KEYS[2]  the chunk's offsets (hash identity -> offset in the chunk)
KEYS[3]  the chunk's online bitmap (over offsets)
KEYS[4]  the dead replica's owner bitmap of the chunk (over offsets)
KEYS[4 + i]  the hash of the i-th node (i = 1 .. n)
ARGV[1]  the dead replica's id
ARGV[1 + i]  the i-th node's identity (nodes of the chunk)
Result:  how many nodes were marked offline
]]
local n = 0
for i = 5, #KEYS do
  local name = ARGV[i - 3]
  local nid = redis.call('HGET', KEYS[2], name)
  if redis.call('HGET', KEYS[i], 'owner') == ARGV[1] then
    redis.call('HSET', KEYS[i], 'online', '0')
    redis.call('HDEL', KEYS[i], 'owner')
    redis.call('ZREM', KEYS[1], name)
    if nid then redis.call('SETBIT', KEYS[3], nid, 0) end
    n = n + 1
  end
  if nid then redis.call('SETBIT', KEYS[4], nid, 0) end
end
return n
