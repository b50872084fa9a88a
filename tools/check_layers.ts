/**
 * The layer check: reads the import graph from `deno info --json` and
 * fails when a file imports upwards or sideways across the layers below, or
 * when files import each other in a circle. Run by `deno task check`.
 *
 * Layers, top to bottom (a file may import from its own wing and from any
 * lower layer, never from a higher one or from another wing of its layer):
 *
 * | layer | wings |
 * | --- | --- |
 * | 0 | `mod.ts` |
 * | 1 | `cli/`, `tools/` |
 * | 2 | `demo.ts` |
 * | 3 | `server.ts` + `server/`, `client.ts` + `client/` |
 * | 4 | `store.ts` + `store/`, `faults/`, `web/` |
 * | 5 | `engine/`, `security/` |
 * | 6 | `net/` |
 * | 7 | `protocol.ts` + `protocol/` |
 * | 8 | `base/` |
 *
 * A wing is an entry file and the folder of the same name, or a folder.
 * Tests (`tests/`) stand outside the layers and may use anything.
 *
 * @module
 */

/** The wings and their layers: an import may only go to a higher number, or stay in its wing. */
export const LAYERS: Readonly<Record<string, number>> = {
  mod: 0,
  cli: 1,
  tools: 1,
  demo: 2,
  server: 3,
  client: 3,
  store: 4,
  faults: 4,
  web: 4,
  engine: 5,
  security: 5,
  net: 6,
  protocol: 7,
  base: 8,
};

/** One import, from a file to a file, both relative to the project's root. */
export interface Import {
  from: string;
  to: string;
}

/** The wing a file belongs to: its top folder, or its name without `.ts`. */
export function wingOf(path: string): string {
  const slash = path.indexOf("/");
  return slash === -1 ? path.replace(/\.ts$/, "") : path.slice(0, slash);
}

/** Every import that breaks the layers, as one line each. */
export function layerViolations(imports: readonly Import[]): string[] {
  const problems: string[] = [];
  for (const { from, to } of imports) {
    const [a, b] = [wingOf(from), wingOf(to)];
    if (a === "tests" || a === b) continue;
    const [la, lb] = [LAYERS[a], LAYERS[b]];
    if (la === undefined || lb === undefined) {
      problems.push(
        `${from} imports ${to}: ${la === undefined ? a : b} is in no layer`,
      );
    } else if (lb <= la) {
      problems.push(
        `${from} imports ${to}: ${a} (layer ${la}) may not import ${b} (layer ${lb})`,
      );
    }
  }
  return problems;
}

/** Every circle of files importing each other (strongly connected components of more than one file, or a file importing itself). */
export function importCycles(imports: readonly Import[]): string[][] {
  const edges = new Map<string, string[]>();
  for (const { from, to } of imports) {
    edges.set(from, [...(edges.get(from) ?? []), to]);
    if (!edges.has(to)) edges.set(to, []);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let counter = 0;
  const visit = (node: string) => {
    index.set(node, counter);
    low.set(node, counter++);
    stack.push(node);
    onStack.add(node);
    for (const next of edges.get(node)!) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    if (component.length > 1 || edges.get(node)!.includes(node)) {
      cycles.push(component.sort());
    }
  };
  for (const node of edges.keys()) if (!index.has(node)) visit(node);
  return cycles;
}

/** The local imports among `roots` and everything they reach, read from `deno info --json`. */
export async function readImports(
  root: string,
  roots: readonly string[],
): Promise<Import[]> {
  const base = new URL(`file://${root.replace(/\/?$/, "/")}`).href;
  const imports: Import[] = [];
  const seen = new Set<string>();
  for (const entry of roots) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!output.success) {
      throw new Error(
        `Cannot read the imports of ${entry}: ${
          new TextDecoder().decode(output.stderr).trim()
        }`,
      );
    }
    const graph = JSON.parse(new TextDecoder().decode(output.stdout));
    for (const module of graph.modules ?? []) {
      const from = localPath(module.specifier, base);
      if (from === undefined || seen.has(from)) continue;
      seen.add(from);
      for (const dependency of module.dependencies ?? []) {
        for (const kind of ["code", "type"] as const) {
          const to = localPath(dependency[kind]?.specifier, base);
          if (to !== undefined) imports.push({ from, to });
        }
      }
    }
  }
  return imports;
}

function localPath(specifier: unknown, base: string): string | undefined {
  if (typeof specifier !== "string" || !specifier.startsWith(base)) return;
  return decodeURIComponent(specifier.slice(base.length));
}

/** The entry points the check starts from: `mod.ts`, the web page's scripts and every script under `tools/`. */
function entryPoints(root: string): string[] {
  const entries = ["mod.ts", "web/src/main.ts", "web/src/hash_worker.ts"];
  const walk = (folder: string) => {
    for (const item of Deno.readDirSync(`${root}/${folder}`)) {
      const path = `${folder}/${item.name}`;
      if (item.isDirectory) walk(path);
      else if (item.name.endsWith(".ts")) entries.push(path);
    }
  };
  walk("tools");
  return entries;
}

async function main(): Promise<number> {
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const imports = await readImports(root, entryPoints(root));
  const problems = [
    ...layerViolations(imports),
    ...importCycles(imports).map((cycle) =>
      `import cycle: ${cycle.join(" -> ")}`
    ),
  ];
  for (const problem of problems) console.error(`check_layers: ${problem}`);
  const files = new Set(imports.flatMap(({ from, to }) => [from, to]));
  console.error(
    `check_layers: ${files.size} files, ${imports.length} imports, ${problems.length} problem(s)`,
  );
  return problems.length === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
