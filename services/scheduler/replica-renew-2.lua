--[[
Purpose: renew a replica's lease, only while it has not ended (once it ended, survivors may have
claimed the replica's nodes and backlog: it must join again, as a new replica), and note the
longest heartbeat interval its agents hold. Also answers every replica's lease and noted interval,
for the caller's view of its peers (discovery judges a node's freshness against the longest
interval a live replica gave).
KEYS[1]  the replicas' leases (zset replica id -> lease end, ms on the Redis clock)
KEYS[2]  the replicas' longest heartbeat intervals (zset replica id -> seconds)
ARGV[1]  the replica id
ARGV[2]  the lease, in ms
ARGV[3]  the longest heartbeat interval the replica's agents hold, in s
Result:  {code, now, {id1, end1, id2, end2, ...}, {id1, s1, id2, s2, ...}}: code 1 renewed, -2 the
         lease had ended (or was removed; nothing written); now is the Redis clock in ms; then
         every replica and its lease end, and every replica's noted interval
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local code = 1
local ends = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
if ends < now then
  code = -2
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
local leases = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
return {code, now, leases, redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')}
