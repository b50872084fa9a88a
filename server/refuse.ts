/**
 * Refusing one request on ftv/1: an `error` frame with the refusal's code,
 * and a log line; the session goes on.
 *
 * @module
 */

import { ERROR_CODE, type Refusal } from "../base/errors.ts";
import type { FramedConnection } from "../net/connection.ts";
import type { ServerContext } from "./context.ts";

/**
 * Sends `refusal` as an `error` frame reading `Cannot <action>: <reason>`.
 * A missing name is an ordinary answer (a client looking for a folder asks
 * for a file first) and is logged at INFO; anything else is a warning.
 */
export async function refuse(
  ctx: ServerContext,
  fc: FramedConnection,
  refusal: Refusal,
  action: string,
): Promise<void> {
  const message = `Cannot ${action}: ${refusal.reason}`;
  const level = refusal.code === ERROR_CODE.notFound ? "INFO" : "WARNING";
  ctx.log.log(level, `Refused request from ${fc.peer}: ${message}`);
  await fc.send({ type: "error", code: refusal.code, message });
}
