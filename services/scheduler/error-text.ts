import { status } from '@grpc/grpc-js';
import { isServiceError } from '../../lib/errors';

/** One line describing an error for logs and run reasons: `CODE: details` for gRPC errors, the message otherwise. */
export function errorText(err: unknown): string {
  if (isServiceError(err)) return `${status[err.code]}: ${err.details}`;
  return err instanceof Error ? err.message : String(err);
}
