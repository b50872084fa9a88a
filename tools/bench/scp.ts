/**
 * The scp baseline: scp with aes128-gcm against an sshd the bench starts on
 * a free port with its own host key and client key, in a temporary folder.
 *
 * @module
 */

import { type ChildHandle, freePort } from "../harness.ts";
import { BenchError, HOST, lastLine } from "./common.ts";
import {
  findTool,
  missing,
  readAll,
  runCommand,
  spawn,
  stopProcess,
} from "./processes.ts";
import {
  baselineSample,
  type Context,
  fileLoad,
  type Row,
  skippedRow,
} from "./rows.ts";
import { discard, freshDir, releaseSetAside } from "./set_aside.ts";
import { isRoot, waitListening } from "./system.ts";

/** The programs the row needs; any of them missing skips it. */
type SshTools = Record<
  "scp" | "ssh" | "ssh-keygen" | "sshd",
  string | undefined
>;

/** ssh and scp options: the bench's key only, no prompts, no known hosts. */
function clientOptions(clientKey: string): string[] {
  return [
    "-F",
    "/dev/null",
    "-i",
    clientKey,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-c",
    "aes128-gcm@openssh.com",
  ];
}

/** scp with aes128-gcm to the bench's own sshd. */
export function scpRow(ctx: Context): Row {
  const label = "scp aes128-gcm";
  const tools: SshTools = {
    scp: findTool("scp"),
    ssh: findTool("ssh"),
    "ssh-keygen": findTool("ssh-keygen"),
    sshd: findTool("sshd"),
  };
  const absent = missing(tools);
  if (absent.length) {
    return skippedRow("scp", label, `${absent.join(", ")} not installed`);
  }
  const { work, source } = ctx;
  const base = `${work}/ssh`;
  const dest = `${base}/dest`;
  const clientKey = `${base}/client_key`;
  let sshd: { child: ChildHandle; port: number; user: string } | undefined;
  return {
    id: "scp",
    label,
    kind: "baseline",
    samples: [],
    async setup() {
      await freshDir(dest);
      sshd = await startSshd(tools, base, clientKey);
    },
    async run(index) {
      const copy = `${dest}/bench.bin`;
      await discard(copy);
      await releaseSetAside();
      const result = await runCommand(tools.scp!, [
        ...clientOptions(clientKey),
        "-q",
        "-P",
        String(sshd!.port),
        source.path,
        `${sshd!.user}@${HOST}:${copy}`,
      ], ctx.timeout(source.size));
      const load = fileLoad(source, "bench.bin");
      return await baselineSample("scp", result, load, { copy, index, label });
    },
    async teardown() {
      if (sshd) await stopProcess(sshd.child);
    },
  };
}

/** A host key and a client key (ed25519, no passphrase) in `base`. */
async function makeKeys(
  keygen: string,
  base: string,
  clientKey: string,
): Promise<void> {
  for (const key of [`${base}/host_key`, clientKey]) {
    const made = await runCommand(keygen, [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "ftv-bench",
      "-f",
      key,
    ], 30_000);
    if (made.code !== 0) {
      throw new BenchError(`ssh-keygen failed: ${lastLine(made.stderr)}`);
    }
  }
  await Deno.copyFile(`${clientKey}.pub`, `${base}/authorized_keys`);
}

/** An sshd config for loopback `port`: keys only, everything in `base`. */
function sshdConfig(base: string, port: number): string {
  return [
    `Port ${port}`,
    `ListenAddress ${HOST}`,
    `HostKey ${base}/host_key`,
    `PidFile ${base}/sshd.pid`,
    `AuthorizedKeysFile ${base}/authorized_keys`,
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PermitRootLogin prohibit-password",
    "UsePAM no",
    "StrictModes no",
    "Subsystem sftp internal-sftp",
    "LogLevel ERROR",
    "",
  ].join("\n");
}

/**
 * Makes the keys, starts sshd on a free port and logs in once with ssh, so
 * a run fails only for scp's own reasons.
 */
async function startSshd(
  tools: SshTools,
  base: string,
  clientKey: string,
): Promise<{ child: ChildHandle; port: number; user: string }> {
  const idOut = await runCommand(findTool("id") ?? "id", ["-un"], 10_000);
  const user = idOut.stdout.trim() || "root";
  await makeKeys(tools["ssh-keygen"]!, base, clientKey);
  const port = freePort(HOST);
  await Deno.writeTextFile(`${base}/sshd_config`, sshdConfig(base, port));
  // sshd insists on its privilege separation folder.
  if (await isRoot()) {
    await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 })
      .catch(() => undefined);
  }
  const child = spawn(tools.sshd!, ["-D", "-e", "-f", `${base}/sshd_config`], {
    stderr: "piped",
  });
  let errText = "";
  readAll(child.process.stderr).then((t) => errText = t, () => undefined);
  try {
    await waitListening(port, child, "sshd", () => errText);
    const probe = await runCommand(tools.ssh!, [
      ...clientOptions(clientKey),
      "-p",
      String(port),
      `${user}@${HOST}`,
      "true",
    ], 30_000);
    if (probe.code !== 0) {
      throw new BenchError(
        `ssh login to the bench's sshd failed: ${
          lastLine(probe.stderr + "\n" + errText)
        }`,
      );
    }
  } catch (error) {
    await stopProcess(child);
    throw error;
  }
  return { child, port, user };
}
