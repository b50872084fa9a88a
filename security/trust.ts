/**
 * Client-side trust: whom a TLS connection to an ftv server may reach.
 *
 * Three modes: a CA file (`ca`), a fingerprint given out of band (`pin`), or
 * trust on first use (`tofu`, ssh-style, remembered in a known_hosts file).
 * Every mode pins a CA, never a leaf, so the server may renew its leaf
 * without clients noticing.
 *
 * How it works, since `Deno.connectTls` can verify only against a CA it is
 * given and reports neither the peer's certificates nor the TLS version:
 * 1. A probe handshake through `node:tls` with `minVersion: "TLSv1.3"` and
 *    verification off reads the server's leaf certificate and proves the
 *    server speaks TLS 1.3. No application byte is sent; the probe closes.
 * 2. For `pin` and `tofu` the CA comes out of the leaf (ftv leaves carry
 *    their CA, see `tls.ts`); its fingerprint is checked against the pin or
 *    the known_hosts line, and the leaf's signature against the CA.
 * 3. The connection handed back is a plain `Deno.TlsConn` that rustls
 *    verifies against that one CA; only then does a TOFU client record the
 *    host.
 *
 * @module
 */

import { ConnectionError, TrustError } from "../base/errors.ts";
import { connect as nodeTlsConnect } from "node:tls";
import { dirname, join } from "node:path";
import {
  embeddedCaOf,
  fingerprintOfPem,
  isIp,
  isSignedBy,
  normalizeFingerprint,
} from "./tls.ts";

/** How the client decides whether to trust the server. */
export type TrustMode =
  | { kind: "ca"; caPem: string }
  | { kind: "pin"; fingerprint: string }
  | { kind: "tofu"; knownHostsPath: string };

/** Options for {@linkcode connectTrusted}. */
export interface ConnectTrustedOptions {
  /** Milliseconds each step (probe, then connection) may take. @default 30000 */
  timeoutMs?: number;
  /** Called when a TOFU client records a server it had not seen before. */
  onNewHost?: (
    host: string,
    fingerprint: string,
    knownHostsPath: string,
  ) => void;
}

/**
 * Where TOFU fingerprints live: `$XDG_CONFIG_HOME/ftv/known_hosts`, else
 * `~/.config/ftv/known_hosts`.
 *
 * @example
 * ```ts
 * const mode = { kind: "tofu", knownHostsPath: defaultKnownHostsPath() } as const;
 * ```
 */
export function defaultKnownHostsPath(): string {
  const xdg = Deno.env.get("XDG_CONFIG_HOME");
  if (xdg) return join(xdg, "ftv", "known_hosts");
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  if (!home) {
    throw new Error(
      "Cannot find the known_hosts file: neither XDG_CONFIG_HOME nor HOME is set",
    );
  }
  return join(home, ".config", "ftv", "known_hosts");
}

/**
 * Opens a TLS 1.3 connection to `host:port` after deciding, per `mode`, that
 * the server is the right one. Throws {@linkcode TrustError} before any
 * application byte is sent when it is not, and `ConnectionError` when the
 * server cannot be reached.
 *
 * @example
 * ```ts
 * using conn = await connectTrusted("files.lan", 9999, {
 *   kind: "pin",
 *   fingerprint: "SHA256:3bb2afb3eb2393fe0b844397d61c4c47f545b288374af1d28b0accdd5ea92c18",
 * });
 * await conn.write(new TextEncoder().encode("hello"));
 * ```
 */
export async function connectTrusted(
  host: string,
  port: number,
  mode: TrustMode,
  options: ConnectTrustedOptions = {},
): Promise<Deno.TlsConn> {
  const hostname = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  const label = hostname.includes(":")
    ? `[${hostname}]:${port}`
    : `${hostname}:${port}`;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const pinned = mode.kind === "pin"
    ? normalizeFingerprint(mode.fingerprint)
    : undefined;

  const leafDer = await probe(hostname, port, label, timeoutMs);
  if (mode.kind === "ca") {
    return await connectVerified(hostname, port, label, {
      caPem: mode.caPem,
      checkName: true,
      timeoutMs,
    });
  }

  const caPem = embeddedCaOf(leafDer);
  if (caPem === null) {
    throw new TrustError(
      "no-ca",
      `Cannot check the fingerprint of "${label}": its certificate does not carry a CA (not made by ftv?); connect with its CA file instead`,
    );
  }
  const fingerprint = await fingerprintOfPem(caPem);
  if (!await isSignedBy(leafDer, caPem)) {
    throw new TrustError(
      "untrusted",
      `Cannot trust "${label}": its certificate is not signed by the CA it carries (${fingerprint}); nothing was sent`,
    );
  }
  if (pinned !== undefined && fingerprint !== pinned) {
    throw new TrustError(
      "pin-mismatch",
      `Cannot trust "${label}": its CA fingerprint is ${fingerprint}, not the pinned ${pinned}; nothing was sent`,
    );
  }
  let known: KnownHost | null = null;
  if (mode.kind === "tofu") {
    known = await lookup(mode.knownHostsPath, label);
    if (known.entry !== null && known.entry.fingerprint !== fingerprint) {
      throw new TrustError(
        "host-changed",
        changedMessage(label, fingerprint, mode.knownHostsPath, known.entry),
      );
    }
  }

  // The CA is per server and pinned, so any leaf it signs is that server:
  // names are not checked, which lets clients use any address of the host.
  const conn = await connectVerified(hostname, port, label, {
    caPem,
    checkName: false,
    timeoutMs,
  });
  if (mode.kind === "tofu" && known?.entry === null) {
    try {
      await record(mode.knownHostsPath, known.text, label, fingerprint);
    } catch (error) {
      conn.close();
      throw new Error(
        `Cannot record "${label}" in "${mode.knownHostsPath}": ${
          (error as Error).message
        }`,
        { cause: error },
      );
    }
    options.onNewHost?.(label, fingerprint, mode.knownHostsPath);
  }
  return conn;
}

interface KnownHost {
  /** The file's text ("" when it does not exist). */
  text: string;
  entry: { fingerprint: string; line: number; raw: string } | null;
}

async function lookup(path: string, label: string): Promise<KnownHost> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { text: "", entry: null };
    throw error;
  }
  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [hostKey, fingerprint] = line.split(/\s+/);
    if (hostKey !== label || fingerprint === undefined) continue;
    try {
      return {
        text,
        entry: {
          fingerprint: normalizeFingerprint(fingerprint),
          line: index + 1,
          raw: line,
        },
      };
    } catch (error) {
      throw new SyntaxError(
        `Cannot read "${path}" line ${
          index + 1
        }: "${fingerprint}" is not a SHA256 fingerprint`,
        { cause: error },
      );
    }
  }
  return { text, entry: null };
}

async function record(
  path: string,
  text: string,
  label: string,
  fingerprint: string,
): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const separator = text === "" || text.endsWith("\n") ? "" : "\n";
  await Deno.writeTextFile(path, `${separator}${label} ${fingerprint}\n`, {
    append: true,
    create: true,
    mode: 0o600,
  });
}

function changedMessage(
  label: string,
  fingerprint: string,
  path: string,
  entry: { fingerprint: string; line: number; raw: string },
): string {
  return [
    `Cannot trust "${label}": its identity has changed.`,
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!",
    "Someone could be eavesdropping on you right now (man-in-the-middle attack)!",
    "It is also possible that the server's certificates were regenerated.",
    `The CA fingerprint the server sent is ${fingerprint}`,
    `known_hosts expects                  ${entry.fingerprint}`,
    `Offending line ${entry.line} in ${path}:`,
    `  ${entry.raw}`,
    "If the change is expected, delete that line and connect again.",
    "Nothing was sent to the server.",
  ].join("\n");
}

/** Handshakes with TLS 1.3 at least, verifying nothing; returns the leaf's DER. */
function probe(
  hostname: string,
  port: number,
  label: string,
  timeoutMs: number,
): Promise<Uint8Array<ArrayBuffer>> {
  return new Promise((resolve, reject) => {
    let outcome:
      | { leaf: Uint8Array<ArrayBuffer> }
      | { error: Error }
      | undefined;
    const socket = nodeTlsConnect({
      host: hostname,
      port,
      rejectUnauthorized: false,
      minVersion: "TLSv1.3",
      // SNI takes names only.
      ...(isIp(hostname) ? {} : { servername: hostname }),
    });
    const settle = (
      result: { leaf: Uint8Array<ArrayBuffer> } | { error: Error },
    ) => {
      if (outcome !== undefined) return;
      outcome = result;
      clearTimeout(timer);
    };
    const timer = setTimeout(() => {
      settle({
        error: new ConnectionError(
          `Cannot connect to "${label}": no TLS handshake within ${timeoutMs} ms`,
        ),
      });
      socket.destroy();
    }, timeoutMs);
    socket.once("secureConnect", () => {
      const protocol = socket.getProtocol();
      const raw = socket.getPeerCertificate()?.raw;
      if (protocol !== "TLSv1.3") {
        settle({ error: tooOld(label, protocol) });
      } else if (!raw || raw.length === 0) {
        settle({
          error: new TrustError(
            "untrusted",
            `Cannot trust "${label}": it sent no certificate`,
          ),
        });
      } else {
        settle({ leaf: new Uint8Array(raw) });
      }
      // Say goodbye without a byte of ours; "close" follows the server's.
      socket.end();
    });
    socket.once("error", (error: Error) => {
      settle({ error: probeError(error, label) });
      socket.destroy();
    });
    socket.once("close", () => {
      clearTimeout(timer);
      if (outcome === undefined) {
        settle({
          error: new ConnectionError(
            `Cannot connect to "${label}": closed during the TLS handshake`,
          ),
        });
      }
      if ("leaf" in outcome!) resolve(outcome.leaf);
      else reject(outcome!.error);
    });
  });
}

function probeError(error: Error, label: string): Error {
  const code = (error as { code?: string }).code;
  const message = error.message;
  if (/protocol ?version|unsupported protocol/i.test(message)) {
    return tooOld(label, null, error);
  }
  if (code === "ECONNREFUSED" || /refused/i.test(message)) {
    return new ConnectionError(
      `Cannot connect to "${label}": connection refused (is the server running?)`,
      { cause: error },
    );
  }
  return new ConnectionError(
    `Cannot connect to "${label}" over TLS: ${message} (is the server running with TLS?)`,
    { cause: error },
  );
}

function tooOld(
  label: string,
  protocol: string | null,
  cause?: Error,
): TrustError {
  return new TrustError(
    "tls-version",
    `Cannot connect to "${label}": it does not speak TLS 1.3${
      protocol ? ` (offered ${protocol})` : ""
    }, which ftv requires`,
    cause ? { cause } : undefined,
  );
}

interface VerifiedOptions {
  caPem: string;
  checkName: boolean;
  timeoutMs: number;
}

/** A `Deno.TlsConn` whose handshake rustls completed against `caPem` alone. */
async function connectVerified(
  hostname: string,
  port: number,
  label: string,
  { caPem, checkName, timeoutMs }: VerifiedOptions,
): Promise<Deno.TlsConn> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let conn: Deno.TlsConn | undefined;
  const onAbort = () => conn?.close();
  try {
    const tcp = await Deno.connect({
      hostname,
      port,
      signal: controller.signal,
    });
    conn = await Deno.startTls(tcp, {
      hostname,
      caCerts: [caPem],
      unsafelyDisableHostnameVerification: !checkName,
    });
    controller.signal.addEventListener("abort", onAbort, { once: true });
    await conn.handshake();
    return conn;
  } catch (error) {
    try {
      conn?.close();
    } catch {
      // Closed by the timeout already.
    }
    if (controller.signal.aborted) {
      throw new ConnectionError(
        `Cannot connect to "${label}": no TLS handshake within ${timeoutMs} ms`,
        { cause: error },
      );
    }
    if (conn === undefined) {
      const refused = error instanceof Deno.errors.ConnectionRefused;
      throw new ConnectionError(
        `Cannot connect to "${label}": ${
          refused
            ? "connection refused (is the server running?)"
            : (error as Error).message
        }`,
        { cause: error },
      );
    }
    if (
      error instanceof Deno.errors.ConnectionReset ||
      error instanceof Deno.errors.UnexpectedEof ||
      error instanceof Deno.errors.BrokenPipe
    ) {
      throw new ConnectionError(
        `Cannot connect to "${label}": connection lost during the TLS handshake (${error.name})`,
        { cause: error },
      );
    }
    throw new TrustError(
      "untrusted",
      `Cannot trust "${label}": ${(error as Error).message}; nothing was sent`,
      { cause: error },
    );
  } finally {
    clearTimeout(timer);
    controller.signal.removeEventListener("abort", onAbort);
  }
}
