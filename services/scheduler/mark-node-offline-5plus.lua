--[[
Purpose: clear a node's online flag, only while its entry still belongs to the calling session,
so that a stream ending late never marks offline a node that has reconnected meanwhile; the node
then belongs to no replica. The end of the stream is the last time the node was heard, so
last_seen becomes it: how long an agent has been gone counts from there, not from its last
heartbeat (up to an interval earlier).
KEYS[1]  the node's hash (all keys of the node's index chunk)
KEYS[2]  the chunk's online nodes (zset identity -> last seen ms)
KEYS[3]  the chunk's offsets (hash identity -> offset in the chunk)
KEYS[4]  the chunk's online bitmap (over offsets)
KEYS[5]  the chunk's known nodes (zset identity -> last seen ms)
KEYS[6]  only when the scheduler runs as a replica: the calling replica's owner bitmap of the chunk
ARGV[1]  the session id
ARGV[2]  the node's identity
ARGV[3]  now, ms since the epoch
Result:  1 when marked offline; 0 when the entry belongs to another session (nothing written)
]]
if redis.call('HGET', KEYS[1], 'session') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'online', '0', 'last_seen', ARGV[3])
redis.call('HDEL', KEYS[1], 'owner')
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[5], 'XX', ARGV[3], ARGV[2])
local nid = redis.call('HGET', KEYS[3], ARGV[2])
if nid then
  redis.call('SETBIT', KEYS[4], nid, 0)
  if KEYS[6] then redis.call('SETBIT', KEYS[6], nid, 0) end
end
return 1
