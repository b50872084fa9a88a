/**
 * A fault-injecting TCP proxy: sits between a real client and a real server
 * and damages the byte stream on its way through, since kernel netem is not
 * available here.
 *
 * Each direction of a connection is cut, by stream offset, into 1460-byte
 * packets (one Ethernet MSS). A packet may get one bit flipped (`flipRate`)
 * or be dropped from the stream (`dropRate`); every read may be stalled
 * (`delayMs`), or every byte delayed while reading goes on (`latencyMs`);
 * a connection may be cut after some bytes (`cutAfterBytes`).
 * Because faults are placed by stream offset with a seeded generator per
 * connection and direction, the same seed gives the same damage however the
 * kernel happens to split the reads.
 *
 * @module
 */

import { COMPONENT, Logger } from "../base/log.ts";
import { DelayLine } from "./delay_line.ts";
import { Rng } from "./rng.ts";

/** Bytes in one packet, the unit that faults apply to. */
export const PACKET_BYTES = 1460;
const PACKET_BITS = PACKET_BYTES * 8;
/** Bytes read at once per direction: large I/O is cheap I/O. */
const READ_BUFFER_BYTES = 256 * 1024;

/** Options for {@linkcode startProxy}. */
export interface FaultProxyOptions {
  /** Address to listen on. @default "127.0.0.1" */
  listenHost?: string;
  /** Port to listen on, 0 for any free port. @default 0 */
  listenPort?: number;
  /** Host every accepted connection is forwarded to. */
  targetHost: string;
  /** Port every accepted connection is forwarded to. */
  targetPort: number;
  /** Probability per packet that one random bit in it is flipped. @default 0 */
  flipRate?: number;
  /** Probability per packet that its bytes are dropped from the stream. @default 0 */
  dropRate?: number;
  /** Milliseconds each forwarded read is held back (which also slows the link). @default 0 */
  delayMs?: number;
  /**
   * Milliseconds each byte takes through the proxy, each way, as on a long
   * link: reading goes on meanwhile, so it costs latency, not throughput.
   * @default 0
   */
  latencyMs?: number;
  /** Close a connection once it has forwarded this many bytes, both directions counted. Never when undefined. */
  cutAfterBytes?: number;
  /** Seed for reproducible damage; drawn from the system when undefined. */
  seed?: number;
  /** Logger. @default new Logger(COMPONENT.proxy) */
  log?: Logger;
}

/** Counters over the proxy's life, updated live. */
export interface FaultProxyStats {
  /** Connections accepted. */
  connections: number;
  /** Bytes forwarded, both directions, after damage. */
  bytes: number;
  /** Bits flipped in forwarded bytes. */
  flipped: number;
  /** Packets dropped, whole or the part of the stream they covered. */
  dropped: number;
  /** Connections closed by `cutAfterBytes`. */
  cut: number;
}

/** A running proxy. */
export interface FaultProxy extends AsyncDisposable {
  /** The bound address (useful with port 0). */
  readonly addr: Deno.NetAddr;
  /** Live counters. */
  readonly stats: FaultProxyStats;
  /** Stops listening, closes every connection, waits for all of them to end. */
  close(): Promise<void>;
}

/**
 * Starts a proxy that forwards to `targetHost:targetPort` and damages what
 * passes through.
 *
 * @example
 * ```ts
 * import { startProxy } from "./proxy.ts";
 * await using proxy = await startProxy({
 *   targetHost: "127.0.0.1",
 *   targetPort: 9999,
 *   flipRate: 0.001,
 *   seed: 1,
 * });
 * console.log(`point the client at port ${proxy.addr.port}`);
 * ```
 */
// deno-lint-ignore require-await -- async so that bad options reject, not throw
export async function startProxy(
  options: FaultProxyOptions,
): Promise<FaultProxy> {
  const settings = settingsOf(options);
  const listener = Deno.listen({
    hostname: options.listenHost ?? "127.0.0.1",
    port: options.listenPort ?? 0,
  });
  const proxy = new Proxy(listener, settings, new Rng(options.seed));
  settings.log.info(
    `Proxy listening on ${format(proxy.addr)} -> ${settings.target}`,
  );
  return proxy;
}

/**
 * Parses `host:port`, with IPv6 hosts in brackets (`[::1]:80`).
 *
 * @example
 * ```ts
 * import { parseHostPort } from "./proxy.ts";
 * parseHostPort("[::1]:80"); // { host: "::1", port: 80 }
 * ```
 */
export function parseHostPort(text: string): { host: string; port: number } {
  const fail = (reason: string) =>
    new TypeError(`Cannot parse address "${text}": ${reason}`);
  const colon = text.lastIndexOf(":");
  if (colon < 0) throw fail("expected host:port");
  let host = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (host.startsWith("[") && host.endsWith("]")) {
    host = host.slice(1, -1);
  } else if (host.includes(":")) {
    throw fail("put an IPv6 host in brackets, as in [::1]:80");
  }
  if (host === "") throw fail("host is missing");
  if (/[\s[\]]/.test(host)) throw fail(`host "${host}" is invalid`);
  if (!/^\d+$/.test(portText)) {
    throw fail(`port "${portText}" is not a number`);
  }
  const port = Number(portText);
  if (port > 65535) throw fail(`port "${portText}" is not in 0..65535`);
  return { host, port };
}

/** Validated options shared by every connection. */
interface Settings {
  targetHost: string;
  targetPort: number;
  target: string;
  flipRate: number;
  dropRate: number;
  delayMs: number;
  latencyMs: number;
  cutAfterBytes: number;
  log: Logger;
}

function settingsOf(options: FaultProxyOptions): Settings {
  const rate = (name: string, value: number | undefined) => {
    const r = value ?? 0;
    if (!(r >= 0 && r <= 1)) {
      throw new RangeError(`Cannot start proxy: ${name} ${r} is not in 0..1`);
    }
    return r;
  };
  const delayMs = options.delayMs ?? 0;
  if (!(delayMs >= 0 && Number.isFinite(delayMs))) {
    throw new RangeError(`Cannot start proxy: delayMs ${delayMs} is invalid`);
  }
  const cut = options.cutAfterBytes ?? Infinity;
  if (!(cut >= 0)) {
    throw new RangeError(`Cannot start proxy: cutAfterBytes ${cut} is invalid`);
  }
  return {
    targetHost: options.targetHost,
    targetPort: options.targetPort,
    target: `${options.targetHost}:${options.targetPort}`,
    flipRate: rate("flipRate", options.flipRate),
    dropRate: rate("dropRate", options.dropRate),
    delayMs,
    latencyMs: options.latencyMs ?? 0,
    cutAfterBytes: cut,
    log: options.log ?? new Logger(COMPONENT.proxy),
  };
}

/** The listener, its connections, and the counters. */
class Proxy implements FaultProxy {
  readonly addr: Deno.NetAddr;
  readonly stats: FaultProxyStats = {
    connections: 0,
    bytes: 0,
    flipped: 0,
    dropped: 0,
    cut: 0,
  };
  #listener: Deno.Listener;
  #settings: Settings;
  #rng: Rng;
  #links = new Set<Link>();
  #tasks = new Set<Promise<void>>();
  #accepting: Promise<void>;
  #closing = false;

  constructor(listener: Deno.Listener, settings: Settings, rng: Rng) {
    this.#listener = listener;
    this.#settings = settings;
    this.#rng = rng;
    this.addr = listener.addr as Deno.NetAddr;
    this.#accepting = this.#acceptLoop();
  }

  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      try {
        this.#listener.close();
      } catch {
        // Already closed.
      }
      for (const link of this.#links) link.close();
    }
    await this.#accepting;
    await Promise.all([...this.#tasks]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #acceptLoop(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const task = this.#handle(conn, ++this.stats.connections);
        this.#tasks.add(task);
        task.finally(() => this.#tasks.delete(task));
      }
    } catch (error) {
      if (!this.#closing) throw error;
    }
  }

  /** Connects to the target, then pumps both ways until the link ends. */
  async #handle(client: Deno.Conn, id: number): Promise<void> {
    const { log, target } = this.#settings;
    const peer = format(client.remoteAddr as Deno.NetAddr);
    // Drawn before connecting, in accept order, so a seed replays exactly.
    const seeds = [0, 1, 2, 3].map(() => this.#rng.int(2 ** 32));
    let server: Deno.Conn;
    try {
      server = await Deno.connect({
        hostname: this.#settings.targetHost,
        port: this.#settings.targetPort,
      });
    } catch (error) {
      log.warn(
        `Cannot connect connection ${id} from ${peer} to ${target}: ${
          describe(error)
        }`,
      );
      closeQuietly(client);
      return;
    }
    if (this.#closing) {
      closeQuietly(client);
      closeQuietly(server);
      return;
    }
    const link = new Link(id, client, server, {
      settings: this.#settings,
      stats: this.stats,
      seeds: seeds as [number, number, number, number],
    });
    this.#links.add(link);
    log.info(`Connection ${id}: ${peer} -> ${target}`);
    try {
      await link.run();
    } finally {
      this.#links.delete(link);
    }
  }
}

interface LinkContext {
  settings: Settings;
  stats: FaultProxyStats;
  /** Seeds for flips and drops, client-to-server then server-to-client. */
  seeds: [number, number, number, number];
}

/** One proxied connection: two pumps, one budget, one teardown. */
class Link {
  readonly id: number;
  #client: Deno.Conn;
  #server: Deno.Conn;
  #context: LinkContext;
  #forwarded = 0;
  #closed = false;
  #abort = new AbortController();

  constructor(
    id: number,
    client: Deno.Conn,
    server: Deno.Conn,
    context: LinkContext,
  ) {
    this.id = id;
    this.#client = client;
    this.#server = server;
    this.#context = context;
  }

  /** Forwards both directions until both have ended or one has failed. */
  async run(): Promise<void> {
    const { settings, stats, seeds } = this.#context;
    const damage = (flipSeed: number, dropSeed: number) =>
      new StreamDamage(stats, {
        flips: new PacketSchedule(settings.flipRate, new Rng(flipSeed)),
        drops: new PacketSchedule(settings.dropRate, new Rng(dropSeed)),
      });
    if (settings.cutAfterBytes <= 0) this.#cut();
    await Promise.all([
      this.#pump(this.#client, this.#server, damage(seeds[0], seeds[1])),
      this.#pump(this.#server, this.#client, damage(seeds[2], seeds[3])),
    ]);
    if (!this.#closed) {
      settings.log.debug(
        `Connection ${this.id} closed after ${this.#forwarded} bytes`,
      );
    }
    this.close();
  }

  /** Closes both sockets and cancels any stall; later calls do nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    closeQuietly(this.#client);
    closeQuietly(this.#server);
  }

  /**
   * Copies `from` to `to`, damaged (and delayed by the latency, if any),
   * then passes the end of stream on.
   */
  async #pump(
    from: Deno.Conn,
    to: Deno.Conn,
    damage: StreamDamage,
  ): Promise<void> {
    const { settings, stats } = this.#context;
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    const forward = async (bytes: Uint8Array) => {
      await writeAll(to, bytes);
      stats.bytes += bytes.length;
    };
    const line = settings.latencyMs > 0
      ? new DelayLine(settings.latencyMs, this.#abort.signal)
      : undefined;
    const draining = line?.drain(forward).catch((error) => this.#failed(error));
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        if (settings.delayMs > 0) await this.#stall();
        if (this.#closed) return;
        const bytes = this.#withinBudget(damage.apply(buffer.subarray(0, n)));
        if (line) await line.push(bytes);
        else await forward(bytes);
        if (this.#forwarded >= settings.cutAfterBytes) {
          line?.end();
          await draining;
          return this.#cut();
        }
      }
      line?.end();
      await draining;
      if (!this.#closed) await to.closeWrite();
    } catch (error) {
      this.#failed(error);
    }
  }

  #failed(error: unknown): void {
    if (this.#closed) return;
    this.#context.settings.log.info(
      `Connection ${this.id} failed: ${describe(error)}`,
    );
    this.close();
  }

  /** Trims `bytes` to what the cut budget allows, and spends it. */
  #withinBudget(bytes: Uint8Array): Uint8Array {
    const room = this.#context.settings.cutAfterBytes - this.#forwarded;
    const allowed = bytes.length > room ? bytes.subarray(0, room) : bytes;
    // Spent before the write, so the other direction sees it at once.
    this.#forwarded += allowed.length;
    return allowed;
  }

  #cut(): void {
    if (this.#closed) return;
    this.#context.stats.cut++;
    this.#context.settings.log.info(
      `Cutting connection ${this.id} after ${this.#forwarded} bytes`,
    );
    this.close();
  }

  /** Waits `delayMs`, or less when the link is closed meanwhile. */
  #stall(): Promise<void> {
    const signal = this.#abort.signal;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, this.#context.settings.delayMs);
      signal.addEventListener("abort", done);
    });
  }
}

/**
 * Where the next fault of one kind falls, as a packet index. Gaps are drawn
 * from the geometric distribution, so a low rate costs one draw per fault,
 * not one per packet.
 */
class PacketSchedule {
  /** Index of the next packet hit; Infinity when the rate is 0. */
  packet = -1;
  /** A bit position inside that packet, for flips. */
  bit = 0;
  #logMiss: number;
  #rng: Rng;

  constructor(rate: number, rng: Rng) {
    this.#logMiss = Math.log1p(-rate);
    this.#rng = rng;
    this.advance();
  }

  /** Moves on to the packet after the next gap. */
  advance(): void {
    this.packet += 1 + this.#gap();
    this.bit = this.#rng.int(PACKET_BITS);
  }

  /** Packets passed over before the next hit. */
  #gap(): number {
    if (this.#logMiss === 0) return Infinity;
    if (this.#logMiss === -Infinity) return 0;
    // 1 - next() is in (0, 1], so the log is finite.
    return Math.floor(Math.log(1 - this.#rng.next()) / this.#logMiss);
  }
}

/** Faults for one direction of one connection, applied read by read. */
class StreamDamage {
  /** Stream offset of the next byte to arrive. */
  #offset = 0;
  #flips: PacketSchedule;
  #drops: PacketSchedule;
  #stats: FaultProxyStats;

  constructor(
    stats: FaultProxyStats,
    schedules: { flips: PacketSchedule; drops: PacketSchedule },
  ) {
    this.#stats = stats;
    this.#flips = schedules.flips;
    this.#drops = schedules.drops;
  }

  /** Damages `chunk` in place; returns what is left of it to forward. */
  apply(chunk: Uint8Array): Uint8Array {
    const start = this.#offset;
    const end = start + chunk.length;
    this.#offset = end;
    const dropped = this.#droppedRanges(start, end);
    this.#flipBits(chunk, start, end, dropped);
    return dropped.length === 0 ? chunk : removeRanges(chunk, dropped);
  }

  /** Ranges of `chunk` (relative, sorted) that belong to dropped packets. */
  #droppedRanges(start: number, end: number): Array<[number, number]> {
    const ranges: Array<[number, number]> = [];
    while (this.#drops.packet * PACKET_BYTES < end) {
      const first = this.#drops.packet * PACKET_BYTES;
      const last = first + PACKET_BYTES;
      // A packet that began in an earlier read was counted there.
      if (first >= start) this.#stats.dropped++;
      ranges.push([
        Math.max(first, start) - start,
        Math.min(last, end) - start,
      ]);
      if (last > end) break;
      this.#drops.advance();
    }
    return ranges;
  }

  /** Flips the scheduled bits that land in `chunk` outside dropped ranges. */
  #flipBits(
    chunk: Uint8Array,
    start: number,
    end: number,
    dropped: Array<[number, number]>,
  ): void {
    let d = 0;
    for (;;) {
      const at = this.#flips.packet * PACKET_BYTES + (this.#flips.bit >> 3);
      if (at >= end) return;
      const i = at - start;
      while (d < dropped.length && dropped[d]![1] <= i) d++;
      if (d === dropped.length || dropped[d]![0] > i) {
        chunk[i]! ^= 1 << (this.#flips.bit & 7);
        this.#stats.flipped++;
      }
      this.#flips.advance();
    }
  }
}

/** Moves the bytes outside `ranges` to the front; returns them. */
function removeRanges(
  chunk: Uint8Array,
  ranges: Array<[number, number]>,
): Uint8Array {
  let kept = 0;
  let from = 0;
  for (const [cutStart, cutEnd] of ranges) {
    chunk.copyWithin(kept, from, cutStart);
    kept += cutStart - from;
    from = cutEnd;
  }
  chunk.copyWithin(kept, from);
  kept += chunk.length - from;
  return chunk.subarray(0, kept);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await conn.write(bytes.subarray(written));
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

function format(addr: Deno.NetAddr): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

function describe(error: unknown): string {
  return error instanceof Error
    ? `${error.name}: ${error.message}`
    : String(error);
}
