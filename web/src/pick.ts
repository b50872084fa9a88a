/// <reference lib="dom" />
/// <reference lib="dom.asynciterable" />
/**
 * Files from what the user gives the page: a drop of files and whole
 * folders (walked to every file inside, keeping the tree as relative
 * paths), or a file input (a folder picker gives each file's relative
 * path too). Where the browser hands out file handles (Chromium), dropped
 * files keep theirs, so an interrupted upload can reopen its file after a
 * reload without asking the user to find it again.
 *
 * @module
 */

import type { Picked } from "./queue.ts";

/** Files of a file input: relative paths for a folder picker, else names. */
export function inputFiles(input: HTMLInputElement): Picked[] {
  return Array.from(input.files ?? [], (file) => ({
    file,
    path: file.webkitRelativePath || file.name,
  }));
}

type HandleItem = DataTransferItem & {
  getAsFileSystemHandle?(): Promise<FileSystemHandle | null>;
};

/**
 * Everything dropped, folders walked. Handles and entries must be taken
 * while the drop event runs, so call this from the handler itself.
 */
export function droppedFiles(data: DataTransfer): Promise<Picked[]> {
  const items = Array.from(data.items).filter((item) => item.kind === "file");
  const handles = items.map((item) =>
    (item as HandleItem).getAsFileSystemHandle?.().catch(() => null) ?? null
  );
  const entries = items.map((item) => item.webkitGetAsEntry?.() ?? null);
  const files = items.map((item) => item.getAsFile());
  return (async () => {
    const picked: Picked[] = [];
    for (const [index, entry] of entries.entries()) {
      const handle = await handles[index];
      if (handle) {
        for await (const file of walkHandle(handle, handle.name)) {
          picked.push(file);
        }
      } else if (entry) {
        for await (const file of walkEntry(entry, entry.name)) {
          picked.push(file);
        }
      } else if (files[index]) {
        picked.push({ file: files[index]!, path: files[index]!.name });
      }
    }
    return picked;
  })();
}

/** Every file under `handle`, with its handle. */
async function* walkHandle(
  handle: FileSystemHandle,
  path: string,
): AsyncGenerator<Picked> {
  if (handle.kind === "file") {
    const file = handle as FileSystemFileHandle;
    yield { file: await file.getFile(), path, handle: file };
    return;
  }
  const folder = handle as FileSystemDirectoryHandle & {
    values(): AsyncIterable<FileSystemHandle>;
  };
  for await (const child of folder.values()) {
    yield* walkHandle(child, `${path}/${child.name}`);
  }
}

/** Every file under `entry` (browsers without handles). */
async function* walkEntry(
  entry: FileSystemEntry,
  path: string,
): AsyncGenerator<Picked> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) =>
      (entry as FileSystemFileEntry).file(resolve, reject)
    );
    yield { file, path };
    return;
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) =>
      reader.readEntries(resolve, reject)
    );
    if (batch.length === 0) return;
    for (const child of batch) yield* walkEntry(child, `${path}/${child.name}`);
  }
}

/**
 * Makes `zone` take drops: it is marked while something is dragged over
 * it, and `onDrop` gets the files.
 */
export function dropZone(
  zone: HTMLElement,
  onDrop: (files: Promise<Picked[]>) => void,
): void {
  let depth = 0;
  zone.addEventListener("dragenter", (event) => {
    event.preventDefault();
    depth++;
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => {
    if (--depth <= 0) zone.classList.remove("over");
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    zone.classList.remove("over");
    if (event.dataTransfer) onDrop(droppedFiles(event.dataTransfer));
  });
}
