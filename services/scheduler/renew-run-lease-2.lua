--[[
Purpose: renew a run's coordinator lease while the caller's epoch is still the run's (also after
the lease lapsed, as long as nobody took the run over), and tell whether CancelRun set the flag.
KEYS[1]  the run's orchestration state (hash)
KEYS[2]  the run's coordinator lease (string)
ARGV[1]  the coordinator's epoch
ARGV[2]  the coordinator's replica id
ARGV[3]  the lease's time to live, in ms
Result:  {1, cancelled (1 or 0)} when renewed; {0, 0} when fenced (another epoch, or no state)
]]
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return {0, 0}
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  return {1, 1}
end
return {1, 0}
