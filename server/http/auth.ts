/**
 * Token auth on the HTTP front door: `Authorization: Bearer TOKEN`,
 * compared in constant time, or a download link signed with the token
 * (`signed_link.ts`), with failed attempts throttled per address by the
 * same {@linkcode AuthThrottle} as the ftv/1 login.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { delay } from "../../base/clock.ts";
import { ERROR_CODE, refusal } from "../../base/errors.ts";
import { type Exchange, refused } from "./exchange.ts";
import { signedLinkValid } from "./signed_link.ts";

/**
 * `undefined` when `ex` may go on: the server has no token, or the request
 * carries it. Otherwise the 401 answer, after the address's pause.
 */
export async function authRefusal(
  ex: Exchange,
): Promise<Response | undefined> {
  const { token, throttle, stopping } = ex.http;
  if (token === undefined) return undefined;
  const pause = throttle.delayFor(ex.address);
  if (pause > 0) await delay(pause, stopping).catch(() => undefined);
  const given = /^Bearer\s+(\S+)\s*$/i.exec(
    ex.request.headers.get("authorization") ?? "",
  )?.[1];
  const link = given === undefined ? signedLinkValid(ex, token) : undefined;
  if (link === true || (given !== undefined && sameToken(given, token))) {
    throttle.succeed(ex.address);
    return undefined;
  }
  if (given !== undefined || link === false) throttle.fail(ex.address);
  return refused(
    ex,
    refusal(
      ERROR_CODE.unauthorized,
      link === false
        ? "the link's signature is wrong or has expired"
        : given === undefined
        ? "the server requires a token"
        : "wrong token",
    ),
    "serve the request",
    { headers: { "WWW-Authenticate": 'Bearer realm="ftv"' } },
  );
}

/** Whether `given` is `token`, in time independent of where they differ. */
function sameToken(given: string, token: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(token));
}
