/**
 * The local-folder store (`--dir`, the default): stored files under the
 * folder with their digests cached in `.ftv/digests.json`, uploads in part
 * files beside their names (claimed with `flock`, so several server
 * processes may share the folder), parity under `.ftv/parity/`, HTTP upload
 * records under `.ftv/uploads/`.
 *
 * @module
 */

import type { Outcome, Refusal } from "../../base/errors.ts";
import type { Logger } from "../../base/log.ts";
import { removeIfPresent } from "../../engine/atomic_file.ts";
import { FileSource } from "../../engine/chunk_source.ts";
import { ChunkStore } from "../../engine/chunk_store.ts";
import type { EagerBody } from "../../engine/receiver.ts";
import type { Manifest } from "../../engine/resume_state.ts";
import type { ChunkGuard } from "../../engine/sender.ts";
import type { DirEntry, FileEntry } from "../../protocol.ts";
import { PART_SUFFIX, STATE_SUFFIX } from "../../protocol/names.ts";
import { ERROR_CODE } from "../../base/errors.ts";
import type {
  Attributes,
  ReceiveOptions,
  Recheck,
  SmallPut,
  SmallRead,
  SmallStored,
  Store,
  StoreCheckReport,
  StoredFile,
  SweepReport,
  Upload,
} from "../interface.ts";
import { Catalog } from "./catalog.ts";
import { type ParityShape, ParityStore } from "./parity_store.ts";
import { sweepParts } from "./part_sweeper.ts";
import { checkStore } from "./store_check.ts";
import { UploadRecords } from "./upload_records.ts";

/** A store in a local folder; see the module docs. */
export class LocalStore implements Store {
  readonly catalog: Catalog;
  readonly parity: ParityStore;
  readonly records: UploadRecords;
  readonly shared = false;

  /** The store in `dir` (which must exist), keeping parity of `shape` in chunks of `chunkSize`. */
  constructor(
    dir: string,
    shape: ParityShape | undefined,
    chunkSize: number,
  ) {
    this.catalog = new Catalog(dir);
    this.parity = new ParityStore(dir, shape, chunkSize);
    this.records = new UploadRecords(dir);
  }

  get description(): string {
    return this.catalog.dir;
  }

  nameRefusal(name: string): Promise<Refusal | undefined> {
    return this.catalog.linkRefusal(name);
  }

  prepare(name: string): Refusal | undefined {
    return this.catalog.makeParents(name);
  }

  totalBytes(): Promise<number> {
    return this.catalog.totalBytes();
  }

  lookup(name: string): Promise<FileEntry | undefined> {
    return this.catalog.lookup(name);
  }

  async open(name: string): Promise<StoredFile | undefined> {
    const opened = await this.catalog.open(name);
    if (!opened) return undefined;
    const { file, entry } = opened;
    const close = () => file.close();
    return {
      entry,
      source: new FileSource(file),
      close,
      [Symbol.dispose]: close,
    };
  }

  readSmall(name: string, maxBytes: number): Promise<SmallRead> {
    return this.catalog.readSmall(name, maxBytes);
  }

  /**
   * A small file whose bytes came whole: checked against the folder first
   * (links, leftovers of an ordinary transfer of the name), stored in one
   * go ({@linkcode Catalog.storeWhole}); its old parity is dropped (the
   * store check adds new).
   */
  async storeSmall(
    put: SmallPut,
    body: EagerBody,
    options: { fsync: boolean },
  ): Promise<SmallStored> {
    const { catalog } = this;
    let found = catalog.inspect(put.name);
    if (found.kind === "refused") return found;
    if (
      found.stored?.size === put.size && await this.#holds(put, put.sha256)
    ) {
      return { kind: "held" };
    }
    if (!body.ok) return { kind: "retry", reason: body.reason };
    if (found.leftovers) {
      const linked = await catalog.linkRefusal(put.name);
      if (linked) return { kind: "refused", refusal: linked };
      await removeIfPresent(catalog.pathOf(put.name) + PART_SUFFIX);
      await removeIfPresent(catalog.pathOf(put.name) + STATE_SUFFIX);
      found = catalog.inspect(put.name);
      if (found.kind === "refused") return found;
    }
    const stored = catalog.storeWhole(put.name, body.bytes, put.sha256, {
      mode: put.mode,
      mtimeMs: put.mtimeMs,
      fsync: options.fsync,
      parentsExist: found.parentsExist,
    });
    if (stored?.code === ERROR_CODE.busy) return { kind: "retry" };
    if (stored) return { kind: "refused", refusal: stored };
    await this.parity.remove(put.name);
    return { kind: "stored" };
  }

  async #holds(put: SmallPut, sha256: string): Promise<boolean> {
    const entry = await this.catalog.lookup(put.name);
    return entry?.size === put.size && entry.sha256 === sha256 &&
      !entry.damaged;
  }

  makeFolder(
    name: string,
    attributes: Attributes,
  ): Promise<Refusal | undefined> {
    return Promise.resolve(this.catalog.makeFolder(name, attributes));
  }

  listTree(prefix?: string): Promise<{ files: FileEntry[]; dirs: DirEntry[] }> {
    return this.catalog.listTree(prefix);
  }

  recheck(name: string): Promise<Recheck> {
    return this.catalog.recheck(name);
  }

  /** Claims `<name>.ftv-part` (see `engine/chunk_store.ts`); finalising records the digest. */
  async receive(
    manifest: Manifest,
    options: ReceiveOptions,
  ): Promise<Outcome<Upload>> {
    const { name } = manifest;
    return await ChunkStore.claim(this.catalog.pathOf(name), manifest, {
      fsync: options.fsync,
      ...(options.attributes ? { attributes: options.attributes } : {}),
      parity: await this.parity.forUpload(name),
      onFinalized: (sha256, info) => this.catalog.record(name, sha256, info),
    });
  }

  async lastWritten(name: string): Promise<number | undefined> {
    try {
      const info = await Deno.stat(this.catalog.pathOf(name) + PART_SUFFIX);
      return info.mtime?.getTime();
    } catch {
      return undefined;
    }
  }

  guardFor(
    name: string,
    entry: FileEntry,
    log: Logger,
  ): Promise<ChunkGuard | undefined> {
    return this.parity.guardFor(
      name,
      this.catalog.pathOf(name),
      entry.sha256,
      log,
    );
  }

  sweep(ttlMs: number, log: Logger): Promise<SweepReport> {
    return sweepParts(this.catalog, ttlMs, log);
  }

  check(log: Logger, signal?: AbortSignal): Promise<StoreCheckReport> {
    return checkStore(this.catalog, this.parity, log, signal);
  }

  flush(): Promise<void> {
    return this.catalog.flush();
  }

  close(): Promise<void> {
    return this.catalog.flush();
  }
}
