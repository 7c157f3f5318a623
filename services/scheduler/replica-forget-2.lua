--[[
Purpose: forget a replica whose lease ended, once survivors have taken over what it held: its
lease entry and its noted heartbeat interval.
KEYS[1]  the replicas' leases (zset replica id -> lease end, ms on the Redis clock)
KEYS[2]  the replicas' longest heartbeat intervals (zset replica id -> seconds)
ARGV[1]  the replica id
Result:  1 when forgotten; 0 while its lease runs
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ends = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ends and tonumber(ends) >= now then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
