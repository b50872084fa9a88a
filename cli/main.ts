/**
 * The `ftv` command line: finds the command, checks its flags against the
 * table in `options.ts`, runs it, and ends every failure with one line and
 * an exit code (0 verified, 1 failed, 2 usage error, 3 authentication).
 *
 * @module
 */

import { EXIT } from "../base/errors.ts";
import { type Io, STDIO } from "../base/io.ts";
import { VERSION } from "../base/version.ts";
import { runDemoCommand, runHash, runProxy, runServer } from "./commands.ts";
import { failureOf, UsageError } from "./exit.ts";
import { type ParsedArgs, parseFlags, valuesOf } from "./flags.ts";
import {
  commandHelp,
  type CommandName,
  COMMANDS,
  type CommandValues,
  isCommand,
  mainHelp,
} from "./options.ts";
import { runClient, runGet, runList, runSend } from "./transfers.ts";

type Run = (parsed: ParsedArgs, io: Io) => Promise<number>;

/** Checks the flags of command `name`, then runs it with their values. */
function checked<C extends CommandName>(
  name: C,
  run: (
    values: CommandValues<C>,
    positionals: string[],
    io: Io,
  ) => Promise<number>,
): Run {
  return (parsed, io) =>
    run(valuesOf(COMMANDS[name].flags, parsed.raw), parsed.positionals, io);
}

const RUN: Record<CommandName, Run> = {
  server: checked("server", runServer),
  client: checked("client", runClient),
  send: checked("send", runSend),
  get: checked("get", runGet),
  list: checked("list", runList),
  hash: checked("hash", runHash),
  demo: checked("demo", runDemoCommand),
  proxy: checked("proxy", runProxy),
};

/**
 * Runs the CLI with `args` (without the program name) and resolves to the
 * exit code.
 *
 * @example
 * ```ts
 * import { main } from "./main.ts";
 * const code = await main(["hash", "README.md"]);
 * ```
 */
export async function main(args: string[], io: Io = STDIO): Promise<number> {
  const [command, ...rest] = args;
  try {
    if (
      command === undefined || command === "help" || command === "--help" ||
      command === "-h"
    ) {
      io.out(mainHelp());
      return command === undefined ? EXIT.usage : EXIT.ok;
    }
    if (command === "--version") {
      io.out(`ftv ${VERSION}`);
      return EXIT.ok;
    }
    if (!isCommand(command)) {
      throw new UsageError(`unknown command "${command}"`);
    }
    const parsed = parseFlags(COMMANDS[command].flags, rest);
    if (parsed.raw.help) {
      io.out(commandHelp(command));
      return EXIT.ok;
    }
    return await RUN[command](parsed, io);
  } catch (error) {
    const { code, line } = failureOf(
      error,
      command !== undefined && isCommand(command) ? command : undefined,
    );
    io.err(line);
    return code;
  }
}
