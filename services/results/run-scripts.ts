import { LuaScript } from '../../lib/lua-script';

/**
 * The Lua scripts of the run store, each in its own `.lua` file beside this module, named for
 * what it does and how many keys it takes, and opening with a header that lists its KEYS, ARGV
 * and result. Each declares every key it touches. The record, results, briefs, header, final
 * set, result events and event log of one run share the `{<task id>}` hash tag, so every script
 * touches one Redis Cluster slot. The global indexes (`runs`, `runs:task:<task>`,
 * `runs:caller:<caller>`) are in other slots: RunStore writes them with their own commands,
 * before CREATE_RUN_BEGIN_SCRIPT and after DELETE_RUN_SCRIPT, and an entry without a record is
 * skipped by `listRuns` and removed by the retention sweep.
 *
 * Every XADD trims the run's log to about ARGV's cap (MAXLEN ~, see `eventLogCap`), so a run
 * whose nodes flood it with reports cannot fill Redis; trimming drops the oldest events.
 *
 * Beside each node's result a run keeps its brief (run-brief.ts): the result without its
 * output, `<node>,<state>,<exitcode>,<completed>,<runtime>,<start>,<statuscode>[,<tail>]` (the
 * host's position in the run's sorted nodes; NodeState number; integer; 1 or 0; seconds; epoch
 * ms or empty; integer; `["<task>","<callerid>"]` only when they differ from the run's), so a
 * slim read never reads output. The brief hash is created with the run and
 * written in the same step as each result, keeping the position CreateRun gave it (so recording
 * never looks the host up in the run's nodes); a run created before briefs existed has none and
 * never gets one (a partial brief hash would hide results).
 */

/**
 * Creating a run takes three scripts, so that no call holds Redis for long however many nodes
 * the run has: BEGIN claims the creation for one token (the run is created once: a second
 * creation of the task id finds the record or the live claim and writes nothing), SLICE writes
 * the pending results and briefs of some nodes while the claim is the caller's, FINISH makes the
 * run visible (record, header, first event) only when every node's result and brief is there.
 * Nothing reads a run without its record or header, so a run is never seen half-created; an
 * attempt that dies half-way leaves a claim that expires and keys the next attempt removes.
 */
export const CREATE_RUN_BEGIN_SCRIPT = LuaScript.fromFile(__dirname, 'create-run-begin-8');
export const CREATE_RUN_SLICE_SCRIPT = LuaScript.fromFile(__dirname, 'create-run-slice-3');
export const CREATE_RUN_FINISH_SCRIPT = LuaScript.fromFile(__dirname, 'create-run-finish-8');

/**
 * Records a batch of node results of one run, each change appended to the event log in the
 * same step. Nothing it reads grows with the run: the header instead of the record, HEXISTS on
 * the results hash for membership, SISMEMBER on the final set instead of decoding the stored
 * result, the node's position from its own brief.
 */
export const RECORD_RESULTS_SCRIPT = LuaScript.fromFile(__dirname, 'record-results-6');

/** A run's state, node count and final count, and which of some hosts are final: what a coordinator follows a run by. */
export const RUN_PROGRESS_SCRIPT = LuaScript.fromFile(__dirname, 'run-progress-2');

/** The positions of hosts that are not nodes of a run: the check before a request's first write when it takes several script calls. */
export const UNKNOWN_HOSTS_SCRIPT = LuaScript.fromFile(__dirname, 'unknown-hosts-1');

/** The output of node_result events, from the results they recorded. */
export const EVENT_OUTPUTS_SCRIPT = LuaScript.fromFile(__dirname, 'event-outputs-2');

/** Gives a run created before headers existed its header, from its record. */
export const WRITE_HEADER_SCRIPT = LuaScript.fromFile(__dirname, 'write-header-2');

/** Optimistic compare-and-set of a run record, with its RunStateChanged event. */
export const REPLACE_RUN_SCRIPT = LuaScript.fromFile(__dirname, 'replace-run-3');

/** One page of a runs index within a score range, newest first, after a given run. */
export const RUNS_PAGE_SCRIPT = LuaScript.fromFile(__dirname, 'runs-page-1');

/** Deletes one run (record, results, briefs, header, event log) if its record is as read; not its index entries. */
export const DELETE_RUN_SCRIPT = LuaScript.fromFile(__dirname, 'delete-run-7');
