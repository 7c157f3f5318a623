--[[
Purpose: remove an expired run entirely, in one atomic step: its record, node results,
briefs, header and event log, but only if the record is still exactly as the sweep read it (a
run that changed meanwhile, for example one that just ended, is judged again next time). Every
key is the run's own (one hash tag); the caller removes the run's index entries once this
answers 1 (services/results/run-store.ts). UNLINK frees large hashes and streams in the
background, so a big run never blocks Redis.
KEYS[1]  the run record (string)
KEYS[2]  the run's node results (hash)
KEYS[3]  the run's event log (stream)
KEYS[4]  the hosts of the run with a final result (set)
KEYS[5]  the run's node briefs (hash)
KEYS[6]  the run's header (hash)
KEYS[7]  the run's host -> event of its current result (hash)
ARGV[1]  the record exactly as read; '' when it was missing (a stale index entry)
Result:  1 when removed; 0 when the record changed meanwhile (nothing removed)
]]
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then
  return 0
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
return 1
