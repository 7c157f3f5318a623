--[[
Purpose: make the caller a run's coordinator when the run's lease has lapsed: a new fencing
epoch (the old coordinator, should it still live, is fenced off by it) and a fresh lease.
KEYS[1]  the run's orchestration state (hash)
KEYS[2]  the run's coordinator lease (string)
ARGV[1]  the new coordinator's replica id
ARGV[2]  the lease's time to live, in ms
Result:  {1, epoch} when taken over; {0} while the lease is held; {-1} when the run has no state
]]
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {0}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1}
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'coordinator', ARGV[1], 'sending', '0')
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {1, epoch}
