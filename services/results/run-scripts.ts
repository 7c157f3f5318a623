import { nodeStateToJSON } from '../../gen/baton/v1/run';
import { LuaScript } from '../../lib/lua-script';
import { FINAL_NODE_STATES } from './run-states';

/**
 * The Lua scripts of the run store. Every script touches only the keys of one run, which share
 * the `{<task id>}` hash tag, so they also work on Redis Cluster; the global `runs` index is
 * written outside them (see RunStore.createRun).
 */

/** Proto JSON names of the final node states, as a Lua table constructor. */
const FINAL_NODE_STATES_LUA = `{ ${[...FINAL_NODE_STATES].map((s) => `${nodeStateToJSON(s)} = true`).join(', ')} }`;

/** Creates a run's record, its pending node results and its first event, all or nothing. */
export const CREATE_RUN_SCRIPT = new LuaScript(
  'create-run',
  `--[[
Purpose: create a run atomically: its record, one result per node and its first event, or
nothing at all when the run exists already.
KEYS[1]  the run record (string)
KEYS[2]  the run's node results (hash host -> NodeResult proto JSON)
KEYS[3]  the run's event log (stream)
ARGV[1]  the Run as proto JSON
ARGV[2]  the first RunEvent (RunStateChanged) as proto JSON, without id
ARGV[3], ARGV[4], ...  host, NodeResult proto JSON: one pair per node
Result:  1 when created; 0 when KEYS[1] exists (nothing written)
]]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
-- Leftovers of a run that no longer has a record must not leak into the new one.
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SET', KEYS[1], ARGV[1])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('XADD', KEYS[3], '*', 'event', ARGV[2])
return 1
`,
);

/** Compare-and-set of node results, each change appended to the event log in the same step. */
export const RECORD_RESULTS_SCRIPT = new LuaScript(
  'record-results',
  `--[[
Purpose: record node results. Each result replaces the stored one unless the stored one is
final and the new one is not final, or the new one is identical; each replacement appends a
RunEvent in the same atomic step, so the event log never misses or duplicates a change.
KEYS[1]  the run's node results (hash host -> NodeResult proto JSON)
KEYS[2]  the run's event log (stream)
ARGV[1]  n, the number of results
ARGV[2 + 4i .. 5 + 4i], for i = 0 .. n-1:
         host; NodeResult as canonical proto JSON; '1' when its state is final, else '0';
         the RunEvent (node_result) to append when it is recorded, without id
Result:  the number of results that changed what was stored
]]
local final = ${FINAL_NODE_STATES_LUA}
local changed = 0
for i = 0, tonumber(ARGV[1]) - 1 do
  local base = 2 + 4 * i
  local host, result, newFinal, event = ARGV[base], ARGV[base + 1], ARGV[base + 2] == '1', ARGV[base + 3]
  local old = redis.call('HGET', KEYS[1], host)
  local keep = false
  if old == result then
    keep = true
  elseif old and not newFinal then
    local ok, decoded = pcall(cjson.decode, old)
    -- A late RUNNING (or any non-final report) never overwrites a final result.
    keep = ok and type(decoded) == 'table' and final[decoded.state] == true
  end
  if not keep then
    redis.call('HSET', KEYS[1], host, result)
    redis.call('XADD', KEYS[2], '*', 'event', event)
    changed = changed + 1
  end
end
return changed
`,
);

/** Optimistic compare-and-set of a run record, with its RunStateChanged event. */
export const REPLACE_RUN_SCRIPT = new LuaScript(
  'replace-run',
  `--[[
Purpose: replace a run record only if it has not changed since it was read (optimistic
concurrency between the scheduler's UpdateRunState and the finalisation after results), and
append the matching event in the same atomic step.
KEYS[1]  the run record (string)
KEYS[2]  the run's event log (stream)
ARGV[1]  the record exactly as it was read
ARGV[2]  the new record, Run proto JSON
ARGV[3]  the RunEvent (run_state_changed) to append, without id
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
redis.call('XADD', KEYS[2], '*', 'event', ARGV[3])
return 1
`,
);

/** One page of the runs index after a given run, newest first. */
export const RUNS_PAGE_SCRIPT = new LuaScript(
  'runs-page',
  `--[[
Purpose: read the page of the runs index that follows a given run, newest first, in one
step, so runs created meanwhile (added at the top) neither repeat nor hide entries.
KEYS[1]  the runs index (zset task id -> creation time in ms)
ARGV[1]  task id of the last run of the previous page
ARGV[2]  that run's score (used when the run has left the index)
ARGV[3]  how many entries to return
Result:  flat array task id, score, task id, score, ...
]]
local count = tonumber(ARGV[3])
local rank = redis.call('ZREVRANK', KEYS[1], ARGV[1])
if rank then
  return redis.call('ZREVRANGE', KEYS[1], rank + 1, rank + count, 'WITHSCORES')
end
return redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '-inf', 'WITHSCORES', 'LIMIT', 0, count)
`,
);
