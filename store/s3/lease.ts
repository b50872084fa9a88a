/**
 * The lease an S3 upload's owner holds on it: written into its resume
 * record with every save, renewed every third of its length while the
 * upload is held, and ended (written as 0) when the owner lets go. Another
 * server may take the upload over once the lease has run out, so a server
 * that dies holding one blocks its upload for at most one lease.
 *
 * @module
 */

/** The lease of one held upload. */
export class Lease {
  readonly ms: number;
  #until = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** A lease of `ms` milliseconds. */
  constructor(ms: number) {
    this.ms = ms;
  }

  /** Until when it runs, ms since the epoch. */
  get until(): number {
    return this.#until;
  }

  /** Whether it has run out. */
  get expired(): boolean {
    return Date.now() > this.#until;
  }

  /** Runs from now on; the new end. */
  extend(): number {
    this.#until = Date.now() + this.ms;
    return this.#until;
  }

  /** Calls `renew` every third of the lease until {@linkcode stop}. */
  start(renew: () => Promise<void>): void {
    this.stop();
    this.#timer = setInterval(() => {
      renew().catch(() => undefined);
    }, Math.max(100, this.ms / 3));
  }

  /** Stops renewing. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
