import { LuaScript } from '../../lib/lua-script';

/**
 * The Lua scripts of a run's orchestration state (run-state.ts), each in its own `.lua` file
 * beside this module, named for what it does and how many keys it takes, and opening with a
 * header that lists its KEYS, ARGV and result. Every key of one run carries the run's
 * `{<task id>}` hash tag, so each script touches one Redis Cluster slot; the global set of
 * active runs is written outside them (a stale entry there is dropped by the scan that finds it).
 * Each script that changes the state first checks the fencing epoch: a coordinator whose run was
 * taken over changes nothing.
 */

/** Creates a run's orchestration state and its coordinator lease. */
export const BEGIN_RUN_STATE_SCRIPT = LuaScript.fromFile(__dirname, 'begin-run-state-4');

/** Moves a run's state on (fenced by epoch, and refused after a cancel when it sends), renewing the lease. */
export const TRANSITION_RUN_STATE_SCRIPT = LuaScript.fromFile(__dirname, 'transition-run-state-2');

/** Renews a coordinator lease and tells whether the run was cancelled. */
export const RENEW_RUN_LEASE_SCRIPT = LuaScript.fromFile(__dirname, 'renew-run-lease-2');

/** Gives a run's coordinator lease up, so another scheduler takes the run over at once. */
export const RELEASE_RUN_LEASE_SCRIPT = LuaScript.fromFile(__dirname, 'release-run-lease-2');

/** Takes over a run whose coordinator lease lapsed. */
export const TAKE_OVER_RUN_SCRIPT = LuaScript.fromFile(__dirname, 'take-over-run-2');

/** Sets a run's cancel flag and answers where the run stands. */
export const CANCEL_RUN_STATE_SCRIPT = LuaScript.fromFile(__dirname, 'cancel-run-state-2');

/** Removes a run's orchestration state once the run needs no coordinator. */
export const FINISH_RUN_STATE_SCRIPT = LuaScript.fromFile(__dirname, 'finish-run-state-4');
