import { status } from '@grpc/grpc-js';
import { BatonError } from '../../lib/errors';
import { scalarFacts } from '../../lib/filter-language';
import { cut, quote } from '../../lib/quote';
import { LIMITS } from '../../lib/limits';
import { TokenBucket } from '../../lib/token-bucket';

/**
 * The per-agent message rate limit of the Connect stream, so that no agent can keep the scheduler
 * busy: a token bucket per stream. Every message an agent sends costs the scheduler work (a Redis
 * write for a heartbeat or FactsUpdate, a RecordNodeResults for a TaskStarted/TaskFinished), so an
 * agent (or anyone holding an agent certificate) that floods its stream would otherwise turn into a
 * flood of Redis and results-service writes. A well-behaved agent sends one heartbeat per interval
 * (15 s by default), a FactsUpdate when its facts change, and two messages per run, so the limit is
 * far above what it ever needs; the burst also covers results re-sent right after a Welcome
 * (agent.ts splitForHello: those over the Hello's 4 MiB budget).
 */

/** Default sustained rate of messages an agent may send on its Connect stream, per second. */
export const DEFAULT_AGENT_MESSAGES_PER_S = 100;

/** Default burst: messages an agent may send at once above the sustained rate. */
export const DEFAULT_AGENT_MESSAGE_BURST = 500;

/** Reason in the ErrorInfo of a stream ended for sending too fast. */
export const AGENT_MESSAGE_RATE_REASON = 'AGENT_MESSAGE_RATE';

/** Options of AgentStreamLimits. */
export interface AgentStreamLimitsOptions {
  /** Sustained messages per second; default DEFAULT_AGENT_MESSAGES_PER_S. */
  messagesPerS?: number;
  /** Bucket size in messages; default DEFAULT_AGENT_MESSAGE_BURST. */
  burst?: number;
  /** Clock in ms (tests); default performance.now, which never goes backwards. */
  nowMs?: () => number;
}

/** A token bucket counting one agent stream's messages. */
export class AgentStreamLimits {
  readonly messagesPerS: number;
  readonly burst: number;
  private readonly bucket: TokenBucket;

  constructor(options: AgentStreamLimitsOptions = {}) {
    this.messagesPerS = options.messagesPerS ?? DEFAULT_AGENT_MESSAGES_PER_S;
    this.burst = options.burst ?? DEFAULT_AGENT_MESSAGE_BURST;
    this.bucket = new TokenBucket({ perS: this.messagesPerS, burst: this.burst, nowMs: options.nowMs });
  }

  /** Takes one message's token: false when the agent is over its rate (the stream must end). */
  admit(): boolean {
    return this.bucket.take();
  }

  /** The status a stream over its rate ends with: RESOURCE_EXHAUSTED, naming the limit. */
  exceeded(): BatonError {
    return new BatonError(
      status.RESOURCE_EXHAUSTED,
      AGENT_MESSAGE_RATE_REASON,
      `the agent sent more than ${this.burst} messages at once or more than ${this.messagesPerS} per second; stream ended, reconnect`,
    );
  }
}

/**
 * Most scalar fact values (leaves of the facts tree) a node may have indexed. Each distinct
 * value is a Redis set, and a Hello is indexed in one Redis script call: without a bound, one
 * agent could send 16 MiB of tiny facts and block Redis for seconds. facter's own output on a
 * large server flattens to a few thousand values.
 */
export const MAX_NODE_FACT_VALUES = LIMITS.nodeFactValues.max;

/** Most classes a node may have indexed (each is a Redis set). */
export const MAX_NODE_CLASSES = LIMITS.nodeClasses.max;

/** Most agents a node may offer. */
export const MAX_NODE_AGENTS = LIMITS.nodeAgents.max;

/** Longest fact path, fact text value, class or agent name indexed, in characters (each becomes part of a Redis key). */
export const MAX_INDEXED_TEXT_CHARS = LIMITS.indexedText.max;

/**
 * Why the facts, classes and agents an agent sent (in a Hello or a FactsUpdate) cannot be
 * indexed, as one line naming the field and the limit; undefined when they can.
 */
export function nodeDescriptionProblem(
  message: 'Hello' | 'FactsUpdate',
  facts: Record<string, unknown> | undefined,
  classes: string[],
  agents: string[] = [],
): string | undefined {
  const values = scalarFacts(facts ?? {});
  if (values.length > MAX_NODE_FACT_VALUES) return `${message}.facts has ${values.length} values; at most ${MAX_NODE_FACT_VALUES} are indexed`;
  for (const [path, value] of values) {
    if (path.length > MAX_INDEXED_TEXT_CHARS)
      return `${message}.facts has a fact path ${quote(path)}; at most ${MAX_INDEXED_TEXT_CHARS} characters are indexed`;
    if (typeof value === 'string' && value.length > MAX_INDEXED_TEXT_CHARS)
      return `${message}.facts.${cut(path, 80)} is ${value.length} characters; at most ${MAX_INDEXED_TEXT_CHARS} are indexed`;
  }
  if (classes.length > MAX_NODE_CLASSES) return `${message}.classes has ${classes.length} classes; at most ${MAX_NODE_CLASSES} are indexed`;
  if (agents.length > MAX_NODE_AGENTS) return `${message}.agents has ${agents.length} agents; at most ${MAX_NODE_AGENTS} are accepted`;
  const long = [...classes, ...agents].find((n) => n.length > MAX_INDEXED_TEXT_CHARS);
  if (long !== undefined) return `${message} names a class or agent ${quote(long)}; at most ${MAX_INDEXED_TEXT_CHARS} characters are indexed`;
  return undefined;
}
