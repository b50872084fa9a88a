/**
 * Which connections a server holds, and which one gives way when it is
 * full. Like sshd's MaxStartups, connections that have not finished their
 * hello (and login) are the first to go: when the server or one address is
 * at its limit, the oldest such connection is closed to admit the new one.
 * A client that speaks promptly therefore gets in while hundreds of idle
 * sockets are held open, from any address, its own included; only when
 * every connection has said hello is a newcomer refused with `busy`.
 *
 * @module
 */

/** A connection as the table sees it. */
export interface Held {
  /** The peer's address (no port). */
  readonly address: string;
  /** Closes the connection. */
  close(): void;
}

/** What {@linkcode ConnectionTable.admit} decided. */
export type Admission<C extends Held = Held> =
  | { ok: true; evicted?: C }
  | { ok: false; reason: string };

/** The connections of one server, with their limits. */
export class ConnectionTable<C extends Held = Held> {
  #max: number;
  #maxPerAddress: number;
  /** In arrival order, so the first one waiting for its hello is the oldest. */
  #all = new Map<C, { established: boolean }>();
  #perAddress = new Map<string, number>();

  /** At most `max` connections, and `maxPerAddress` from one address. */
  constructor(max: number, maxPerAddress: number) {
    this.#max = max;
    this.#maxPerAddress = maxPerAddress;
  }

  /** Connections held. */
  get size(): number {
    return this.#all.size;
  }

  /**
   * Admits `connection`, closing the oldest connection still in its
   * handshake when a limit is reached (of the same address for the
   * per-address limit); refuses it when none can give way.
   */
  admit(connection: C): Admission<C> {
    let evicted: C | undefined;
    const fromAddress = this.#perAddress.get(connection.address) ?? 0;
    if (fromAddress >= this.#maxPerAddress) {
      evicted = this.#oldestWaiting(connection.address);
      if (!evicted) {
        return {
          ok: false,
          reason:
            `${this.#maxPerAddress} connections from ${connection.address} already open`,
        };
      }
    } else if (this.#all.size >= this.#max) {
      evicted = this.#oldestWaiting();
      if (!evicted) {
        return {
          ok: false,
          reason: `${this.#max} connections already open`,
        };
      }
    }
    if (evicted) {
      this.remove(evicted);
      evicted.close();
    }
    this.#all.set(connection, { established: false });
    this.#perAddress.set(
      connection.address,
      (this.#perAddress.get(connection.address) ?? 0) + 1,
    );
    return evicted ? { ok: true, evicted } : { ok: true };
  }

  /** Notes that `connection` finished its hello: it no longer gives way. */
  established(connection: C): void {
    const entry = this.#all.get(connection);
    if (entry) entry.established = true;
  }

  /** Forgets `connection` (it closed). */
  remove(connection: C): void {
    if (!this.#all.delete(connection)) return;
    const left = (this.#perAddress.get(connection.address) ?? 1) - 1;
    if (left > 0) this.#perAddress.set(connection.address, left);
    else this.#perAddress.delete(connection.address);
  }

  /** Every connection held. */
  connections(): C[] {
    return [...this.#all.keys()];
  }

  #oldestWaiting(address?: string): C | undefined {
    for (const [connection, { established }] of this.#all) {
      if (
        !established &&
        (address === undefined || connection.address === address)
      ) {
        return connection;
      }
    }
    return undefined;
  }
}
