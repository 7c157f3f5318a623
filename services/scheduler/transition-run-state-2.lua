--[[
Purpose: change a run's orchestration state as its coordinator, renewing the lease in the same
step. Fenced: a coordinator whose epoch is no longer the run's changes nothing. A change that
leads to run commands being sent ('send') is refused once the run is cancelled, so no batch goes
out after CancelRun set the flag.
KEYS[1]  the run's orchestration state (hash)
KEYS[2]  the run's coordinator lease (string)
ARGV[1]  the coordinator's epoch
ARGV[2]  the coordinator's replica id
ARGV[3]  the lease's time to live, in ms
ARGV[4]  'send' when the change precedes sending run commands, else 'keep'
ARGV[5], ARGV[6], ...  field, value pairs to set
Result:  1 when changed; 0 when fenced (another epoch, or the state is gone); -1 when cancelled
]]
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then
  return 0
end
if ARGV[4] == 'send' and redis.call('HGET', KEYS[1], 'cancel') == '1' then
  return -1
end
if #ARGV >= 5 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 5))
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
