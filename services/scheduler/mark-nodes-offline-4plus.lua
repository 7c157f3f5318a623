--[[
Purpose: clear the online flag of nodes of one index chunk whose streams ended, each only while
its entry still belongs to the session whose stream ended, so that a stream ending late never
marks offline a node that has reconnected meanwhile; such a node then belongs to no replica. The
end of the stream is the last time the node was heard, so last_seen becomes it: how long an
agent has been gone counts from there, not from its last heartbeat (up to an interval earlier).
The nodes are distinct.
KEYS[1]  the chunk's online nodes (zset identity -> last seen ms) (all keys are that chunk's)
KEYS[2]  the chunk's offsets (hash identity -> offset in the chunk)
KEYS[3]  the chunk's online bitmap (over offsets)
KEYS[4]  the chunk's known nodes (zset identity -> last seen ms)
KEYS[4 + i]  the hash of the i-th node (i = 1 .. n)
KEYS[5 + n]  only when the scheduler runs as a replica: the calling replica's owner bitmap of the
         chunk
ARGV[1]  n, the number of nodes
ARGV[3i - 1], ARGV[3i], ARGV[3i + 1]  the i-th node's identity, the session id whose stream
         ended, and when it ended (ms since the epoch)
Result:  one code per node, in order: 1 marked offline; 0 the entry belongs to another session
         (nothing written for that node)
]]
local n = tonumber(ARGV[1])
local owner = KEYS[5 + n]
local out, gone, seen = {}, {}, {}
for i = 1, n do
  local node, name, session, at = KEYS[4 + i], ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
  if redis.call('HGET', node, 'session') ~= session then
    out[i] = 0
  else
    out[i] = 1
    redis.call('HSET', node, 'online', '0', 'last_seen', at)
    redis.call('HDEL', node, 'owner')
    gone[#gone + 1] = name
    seen[#seen + 1] = at
    seen[#seen + 1] = name
    local nid = redis.call('HGET', KEYS[2], name)
    if nid then
      redis.call('SETBIT', KEYS[3], nid, 0)
      if owner then redis.call('SETBIT', owner, nid, 0) end
    end
  end
end
-- unpack() pushes every value on Lua's bounded stack: long argument lists go in chunks.
for i = 1, #gone, 1000 do redis.call('ZREM', KEYS[1], unpack(gone, i, math.min(i + 999, #gone))) end
for i = 1, #seen, 1000 do redis.call('ZADD', KEYS[4], 'XX', unpack(seen, i, math.min(i + 999, #seen))) end
return out
