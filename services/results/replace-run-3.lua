--[[
Purpose: replace a run record only if it has not changed since it was read (optimistic
concurrency between the scheduler's UpdateRunState and the finalisation after results), and
append the matching event in the same atomic step.
KEYS[1]  the run record (string)
KEYS[2]  the run's event log (stream)
KEYS[3]  the run's header (hash): its state follows the record's, when the run has one
ARGV[1]  the record exactly as it was read
ARGV[2]  the new record, Run proto JSON
ARGV[3]  the RunEvent (run_state_changed) to append, without id
ARGV[4]  the cap of the event log (entries)
ARGV[5]  the new record's state (RunState number)
Result:  1 when replaced; 0 when the record changed meanwhile (re-read and retry);
         -1 when the run does not exist
]]
local current = redis.call('GET', KEYS[1])
if not current then
  return -1
end
if current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HSET', KEYS[3], 'state', ARGV[5])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
return 1
