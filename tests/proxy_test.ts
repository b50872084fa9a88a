import assert from "node:assert/strict";
import { Logger } from "../base/log.ts";
import {
  type FaultProxyOptions,
  PACKET_BYTES,
  parseHostPort,
  startProxy,
} from "../faults/proxy.ts";

const MiB = 1024 * 1024;

/** A logger whose lines land in `lines` instead of stderr. */
function captureLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return {
    log: new Logger("FaultProxy", { sink: (l) => lines.push(l) }),
    lines,
  };
}

function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, i + 65536));
  }
  return bytes;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await conn.write(bytes.subarray(written));
  }
}

/** Writes `bytes` in pieces of `piece` bytes, then says "done sending". */
async function send(
  conn: Deno.Conn,
  bytes: Uint8Array,
  piece = bytes.length,
): Promise<void> {
  for (let i = 0; i < bytes.length; i += piece) {
    await writeAll(conn, bytes.subarray(i, i + piece));
  }
  await conn.closeWrite();
}

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(256 * 1024);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    parts.push(buffer.slice(0, n));
  }
  const all = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}

/** Bits that differ between two arrays of the same length. */
function diffBits(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let bits = 0;
  for (let i = 0; i < a.length; i++) {
    let x = a[i]! ^ b[i]!;
    for (; x !== 0; x &= x - 1) bits++;
  }
  return bits;
}

/** Indices of `sent`'s packets missing from `received`, or throws if it is not `sent` minus whole packets. */
function missingPackets(sent: Uint8Array, received: Uint8Array): number[] {
  const missing: number[] = [];
  let at = 0;
  for (let i = 0; i * PACKET_BYTES < sent.length; i++) {
    const packet = sent.subarray(i * PACKET_BYTES, (i + 1) * PACKET_BYTES);
    const next = received.subarray(at, at + packet.length);
    if (next.length === packet.length && diffBits(next, packet) === 0) {
      at += packet.length;
    } else {
      missing.push(i);
    }
  }
  assert.equal(at, received.length, "received bytes not in the sent stream");
  return missing;
}

/** A server on 127.0.0.1:0 running `handle` per connection; disposal waits for every handler. */
function startServer(handle: (conn: Deno.Conn) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const handlers: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      handlers.push(handle(conn).finally(() => conn.close()));
    }
  })();
  return {
    port: listener.addr.port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      await Promise.all(handlers);
    },
  };
}

async function echo(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(256 * 1024);
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    await writeAll(conn, buffer.subarray(0, n));
  }
  await conn.closeWrite();
}

/** A server that keeps what one connection sends and resolves it at the end. */
function startSink() {
  const { promise, resolve } = Promise.withResolvers<Uint8Array>();
  const server = startServer(async (conn) => resolve(await readAll(conn)));
  return Object.assign(server, { received: promise });
}

/** Sends `data` through a fresh proxy into a sink; returns what arrived and the stats. */
async function throughProxy(
  data: Uint8Array,
  options: Omit<FaultProxyOptions, "targetHost" | "targetPort">,
  piece?: number,
) {
  await using sink = startSink();
  await using proxy = await startProxy({
    targetHost: "127.0.0.1",
    targetPort: sink.port,
    log: captureLog().log,
    ...options,
  });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: proxy.addr.port,
  });
  await send(conn, data, piece);
  const received = await sink.received;
  return { received, stats: { ...proxy.stats } };
}

Deno.test("startProxy() passes 8 MiB both ways unchanged without faults", async () => {
  await using server = startServer(echo);
  await using proxy = await startProxy({
    targetHost: "127.0.0.1",
    targetPort: server.port,
    log: captureLog().log,
  });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: proxy.addr.port,
  });
  const data = randomBytes(8 * MiB);
  const [, back] = await Promise.all([send(conn, data), readAll(conn)]);
  assert.equal(back.length, data.length);
  assert.equal(diffBits(back, data), 0);
  assert.deepEqual(proxy.stats, {
    connections: 1,
    bytes: 16 * MiB,
    flipped: 0,
    dropped: 0,
    cut: 0,
  });
});

Deno.test("startProxy() flips one bit per packet with flipRate 1", async () => {
  const packets = 2000;
  const data = randomBytes(packets * PACKET_BYTES);
  const { received, stats } = await throughProxy(data, { flipRate: 1 });
  assert.equal(received.length, data.length);
  assert.equal(diffBits(received, data), packets);
  assert.equal(stats.flipped, packets);
  for (let i = 0; i < packets; i++) {
    const range = [i * PACKET_BYTES, (i + 1) * PACKET_BYTES] as const;
    assert.equal(
      diffBits(received.subarray(...range), data.subarray(...range)),
      1,
    );
  }
});

Deno.test("startProxy() flips as many bits as it counts at a low rate", async () => {
  const data = randomBytes(3 * MiB + 7);
  const { received, stats } = await throughProxy(data, { flipRate: 0.01 });
  assert.equal(received.length, data.length);
  assert.ok(stats.flipped > 0);
  assert.equal(diffBits(received, data), stats.flipped);
});

Deno.test("startProxy() drops whole packets and counts them", async () => {
  const data = randomBytes(2000 * PACKET_BYTES);
  const { received, stats } = await throughProxy(data, { dropRate: 0.05 });
  assert.ok(stats.dropped > 0);
  assert.equal(received.length, data.length - stats.dropped * PACKET_BYTES);
  assert.equal(missingPackets(data, received).length, stats.dropped);
  assert.equal(stats.bytes, received.length);
});

Deno.test("startProxy() cuts a connection after cutAfterBytes", async () => {
  const data = randomBytes(4 * MiB);
  await using source = startServer(async (conn) => {
    // The cut resets this side mid-write; that is the point.
    await writeAll(conn, data).catch(() => {});
  });
  const cutAfterBytes = 100_000;
  await using proxy = await startProxy({
    targetHost: "127.0.0.1",
    targetPort: source.port,
    cutAfterBytes,
    log: captureLog().log,
  });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: proxy.addr.port,
  });
  const received = await readAll(conn);
  // Only one direction flows, so the budget is met to the byte.
  assert.equal(received.length, cutAfterBytes);
  assert.equal(diffBits(received, data.subarray(0, cutAfterBytes)), 0);
  assert.equal(proxy.stats.cut, 1);
});

Deno.test("startProxy() gives the same damage for the same seed", async () => {
  const data = randomBytes(MiB + 123);
  const faults = { flipRate: 0.02, dropRate: 0.02 };
  const first = await throughProxy(data, { ...faults, seed: 42 });
  // Small writes change where reads split; damage follows stream offsets.
  const again = await throughProxy(data, { ...faults, seed: 42 }, 4099);
  const other = await throughProxy(data, { ...faults, seed: 43 });
  assert.notEqual(first.received.length, data.length);
  assert.deepEqual(again.received, first.received);
  assert.deepEqual(again.stats, first.stats);
  assert.notDeepEqual(other.received, first.received);
});

Deno.test("startProxy() closes the client and logs once when the target is down", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  const { log, lines } = captureLog();
  await using proxy = await startProxy({
    targetHost: "127.0.0.1",
    targetPort: port,
    log,
  });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: proxy.addr.port,
  });
  assert.equal((await readAll(conn)).length, 0);
  const warnings = lines.filter((l) => l.includes(" - WARNING - "));
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0]!,
    /FaultProxy - WARNING - Cannot connect connection 1/,
  );
});

Deno.test("startProxy() stalls each read by delayMs", async () => {
  await using server = startServer(echo);
  await using proxy = await startProxy({
    targetHost: "127.0.0.1",
    targetPort: server.port,
    delayMs: 40,
    log: captureLog().log,
  });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: proxy.addr.port,
  });
  const started = performance.now();
  await writeAll(conn, new Uint8Array([7]));
  assert.equal(await conn.read(new Uint8Array(1)), 1);
  // Two stalls: one on the way there, one on the way back.
  assert.ok(performance.now() - started >= 75);
});

Deno.test("close() ends open connections without waiting for stalls", async () => {
  await using server = startServer(echo);
  await using proxy = await startProxy({
    targetHost: "127.0.0.1",
    targetPort: server.port,
    delayMs: 600_000,
    log: captureLog().log,
  });
  using conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: proxy.addr.port,
  });
  await writeAll(conn, new Uint8Array([7]));
  await proxy.close();
  assert.equal((await readAll(conn)).length, 0);
});

Deno.test({
  name: "parseHostPort() reads host:port and rejects bad input",
  permissions: "none",
  async fn(t) {
    const good = [
      ["127.0.0.1:9000", { host: "127.0.0.1", port: 9000 }],
      ["localhost:1", { host: "localhost", port: 1 }],
      ["[::1]:80", { host: "::1", port: 80 }],
    ] as const;
    for (const [text, expected] of good) {
      await t.step(`accepts "${text}"`, () => {
        assert.deepEqual(parseHostPort(text), expected);
      });
    }
    const bad = [
      ["x", /expected host:port/],
      [":80", /host is missing/],
      ["h:99999", /not in 0\.\.65535/],
      ["h:abc", /"abc" is not a number/],
      ["::1:80", /brackets/],
    ] as const;
    for (const [text, reason] of bad) {
      await t.step(`rejects "${text}"`, () => {
        assert.throws(() => parseHostPort(text), (error: unknown) => {
          assert.ok(error instanceof TypeError);
          assert.match(error.message, /^Cannot parse address "/);
          assert.match(error.message, reason);
          return true;
        });
      });
    }
  },
});
