--[[
Purpose: the replicas whose lease has ended, or those whose lease runs, on the Redis clock.
KEYS[1]  the replicas' leases (zset replica id -> lease end, ms on the Redis clock)
ARGV[1]  'ended' or 'live'
Result:  their ids
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'live' then return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf') end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
