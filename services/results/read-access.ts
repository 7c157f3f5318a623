import type { ListRunsRequest } from '../../gen/baton/v1/results_service';
import type { Run } from '../../gen/baton/v1/run';
import { AccessControl, actingCaller, type CallerSource } from '../../lib/access-control';
import type { Logger } from '../../lib/logger';

/** ErrorInfo reason of a read refused by own-results-only. */
export const NOT_OWN_RUN = 'NOT_OWN_RUN';

/**
 * Who may read which runs on the results service (docs/security.md): the policy's `read` action
 * and `own-results-only` (Choria's `plugin.choria.tasks.own_status_only`, docs/choria-compat.md §2.4
 * and §7). Choria checked only `task_status`; its `bolt_task` data plugin read any run. Here
 * every read of a run (GetRunStatus, WatchRunEvents, ListRuns) is checked, including the reads
 * the scheduler makes for an operator (a relayed WatchRun, `bolt_task()` terms): the scheduler
 * forwards the operator's caller id (lib/access-control.ts ON_BEHALF_OF_METADATA_KEY), so this
 * service is the one place reads are decided.
 */
export class ReadAccess {
  constructor(
    private readonly access: AccessControl,
    /** Config `own-results-only`: a caller reads only runs it started. */
    private readonly ownResultsOnly: boolean,
  ) {}

  /** Allows every read: no policy, own-results-only off. */
  static allowAll(log: Logger): ReadAccess {
    return new ReadAccess(AccessControl.none(log), false);
  }

  /** True when reads are checked at all (a policy, or own-results-only). */
  get active(): boolean {
    return this.ownResultsOnly || this.access.policy !== undefined;
  }

  /** Allows reading `run`, or throws PERMISSION_DENIED (own-results-only first, then the policy). */
  checkRun(call: CallerSource, run: Run): void {
    if (!this.active) return;
    const caller = actingCaller(call);
    if (caller === undefined) return;
    const request = {
      caller,
      action: 'read' as const,
      task: run.task,
      environment: run.environment,
      subject: `run ${run.taskId} (${run.task} in ${run.environment})`,
    };
    if (this.ownResultsOnly && run.caller !== caller) {
      // Only the owner: the task, nodes and input of someone else's run stay unsaid.
      this.access.refuse(
        request,
        { task_id: run.taskId },
        undefined,
        `run ${run.taskId} belongs to ${run.caller}; own-results-only lets ${caller} read only its own runs`,
        NOT_OWN_RUN,
      );
    }
    this.access.authorize(request, { task_id: run.taskId });
  }

  /**
   * The ListRuns request to serve: checked against the policy (with its task filter, if any),
   * and under own-results-only restricted to the caller's runs; a `caller` filter naming
   * someone else is PERMISSION_DENIED.
   */
  restrictList(call: CallerSource, req: ListRunsRequest): ListRunsRequest {
    if (!this.active) return req;
    const caller = actingCaller(call);
    if (caller === undefined) return req;
    const task = req.task || undefined;
    const request = { caller, action: 'read' as const, task, subject: task === undefined ? 'runs of every task' : `runs of ${task}` };
    const details = { filter: { task: task ?? null, caller: req.caller || null } };
    this.access.authorize(request, details);
    if (!this.ownResultsOnly) return req;
    if (req.caller && req.caller !== caller) {
      this.access.refuse(
        request,
        details,
        undefined,
        `runs of ${req.caller} cannot be listed; own-results-only lets ${caller} list only its own runs`,
        NOT_OWN_RUN,
      );
    }
    return { ...req, caller };
  }
}
