/**
 * TLS certificates for an ftv server, made in-process (ECDSA P-256 over Web
 * Crypto, no `openssl` needed): a small CA that is the server's stable
 * identity, and a leaf certificate signed by it that the server presents.
 * rustls (Deno's TLS) refuses a self-signed certificate used as its own CA,
 * hence the pair.
 *
 * Fingerprints read `SHA256:` followed by 64 lowercase hex digits: the
 * SHA-256 of the certificate's DER bytes, the same digits as
 * `openssl x509 -noout -fingerprint -sha256` prints, without the colons.
 *
 * The leaf also carries its CA certificate in its Authority Information
 * Access extension (`caIssuers`, as a `data:` URI), so a client that knows
 * only a fingerprint can learn the CA from the handshake alone (see
 * `trust.ts`).
 *
 * @module
 */

import * as x509 from "@peculiar/x509";
import { join } from "node:path";
import { META_DIR } from "../protocol/names.ts";

/** What a server needs to listen with TLS, and what clients pin. */
export interface ServerCertificates {
  /** The CA certificate (PEM): clients in "ca" mode trust it. */
  caCertPem: string;
  /** The leaf certificate (PEM) to present; signed by the CA. */
  certPem: string;
  /** The leaf's private key (PKCS#8 PEM). */
  keyPem: string;
  /** `SHA256:` + lowercase hex of the CA certificate's DER: the server's identity. */
  caFingerprint: string;
}

/** Folder, under the server's data folder, that holds the certificates. */
export const TLS_DIR: string = join(META_DIR, "tls");

const FILES = {
  ca: "ca.pem",
  caKey: "ca-key.pem",
  cert: "cert.pem",
  key: "key.pem",
} as const;

const ALGORITHM = {
  name: "ECDSA",
  namedCurve: "P-256",
  hash: "SHA-256",
} as const;
const DEFAULT_NAMES = ["localhost", "127.0.0.1", "::1"] as const;
const DAY_MS = 86_400_000;
const CA_DAYS = 7_300;
const LEAF_DAYS = 825;
const RENEW_BEFORE_DAYS = 30;
const CA_ISSUERS_PREFIX = "data:application/pkix-cert;base64,";

/**
 * Returns the server's certificates from `dir/.ftv/tls/`, creating them on
 * first use. The CA never changes once made; the leaf is re-signed by the
 * same CA (same key, same fingerprint) when it expires within 30 days or
 * does not name one of `hostnames`. It always names `localhost`,
 * `127.0.0.1` and `::1`.
 *
 * Files: `ca.pem`, `ca-key.pem` (0600), `cert.pem`, `key.pem` (0600).
 *
 * @example
 * ```ts
 * const certs = await ensureServerCertificates("./ftv-data", ["files.lan"]);
 * using listener = Deno.listenTls({
 *   hostname: "0.0.0.0",
 *   port: 9999,
 *   cert: certs.certPem,
 *   key: certs.keyPem,
 * });
 * console.log(`fingerprint ${certs.caFingerprint}`);
 * ```
 */
export async function ensureServerCertificates(
  dir: string,
  hostnames: string[] = [],
): Promise<ServerCertificates> {
  const names = subjectNames(hostnames);
  const tlsDir = join(dir, TLS_DIR);
  let stored = await readStored(tlsDir);
  if (stored === null) {
    stored = await createAll(dir, tlsDir, names);
  } else if (needsNewLeaf(stored.leaf, names)) {
    stored = await reissueLeaf(tlsDir, stored, names);
  }
  return {
    caCertPem: stored.caCertPem,
    certPem: stored.certPem,
    keyPem: stored.keyPem,
    caFingerprint: await fingerprintOfPem(stored.caCertPem),
  };
}

/**
 * Reads a certificate chain and its private key given by the user
 * (`--cert`, `--key`), checking that each file holds what it should.
 *
 * @example
 * ```ts
 * const { certPem, keyPem } = await loadCertificates("fullchain.pem", "privkey.pem");
 * using listener = Deno.listenTls({ port: 9999, cert: certPem, key: keyPem });
 * ```
 */
export async function loadCertificates(
  certPath: string,
  keyPath: string,
): Promise<{ certPem: string; keyPem: string }> {
  const certPem = await readText(certPath, "certificate");
  const keyPem = await readText(keyPath, "private key");
  const first = pemBlocks(certPem, "CERTIFICATE")[0];
  if (first === undefined) {
    throw new SyntaxError(
      `Cannot load certificate "${certPath}": no "BEGIN CERTIFICATE" block`,
    );
  }
  try {
    new x509.X509Certificate(first);
  } catch (error) {
    throw new SyntaxError(
      `Cannot load certificate "${certPath}": not a valid X.509 certificate`,
      { cause: error },
    );
  }
  if (!/-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/.test(keyPem)) {
    throw new SyntaxError(
      `Cannot load private key "${keyPath}": no "BEGIN PRIVATE KEY" block`,
    );
  }
  return { certPem, keyPem };
}

/**
 * Fingerprint (`SHA256:` + lowercase hex of the DER) of the first
 * certificate in a PEM text.
 *
 * @example
 * ```ts
 * const fingerprint = await fingerprintOfPem(await Deno.readTextFile("ca.pem"));
 * ```
 */
export async function fingerprintOfPem(pem: string): Promise<string> {
  const der = pemBlocks(pem, "CERTIFICATE")[0];
  if (der === undefined) {
    throw new SyntaxError(
      'Cannot compute a fingerprint: no "BEGIN CERTIFICATE" block in the text',
    );
  }
  const digest = await crypto.subtle.digest("SHA-256", der);
  return `SHA256:${new Uint8Array(digest).toHex()}`;
}

/**
 * Canonical form of a fingerprint typed by a user: accepts an optional
 * `SHA256:` prefix, any case, and colons (as `openssl` prints them).
 *
 * @example
 * ```ts
 * normalizeFingerprint("3B:B2:AF:...:2C:18"); // "SHA256:3bb2af...2c18"
 * ```
 */
export function normalizeFingerprint(text: string): string {
  const hex = text.trim().replace(/^sha-?256[:=]?/i, "").replaceAll(":", "")
    .toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new TypeError(
      `Cannot use fingerprint "${text}": expected "SHA256:" and 64 hex digits`,
    );
  }
  return `SHA256:${hex}`;
}

/**
 * The CA certificate (PEM) that an ftv leaf certificate carries in its
 * Authority Information Access extension, or `null` when there is none
 * (a certificate not made by {@linkcode ensureServerCertificates}).
 * Nothing is verified here: compare its fingerprint, then let TLS verify.
 */
export function embeddedCaOf(leafDer: Uint8Array<ArrayBuffer>): string | null {
  let leaf: x509.X509Certificate;
  try {
    leaf = new x509.X509Certificate(leafDer);
  } catch {
    return null;
  }
  const aia = leaf.getExtension(x509.AuthorityInfoAccessExtension);
  const url = aia?.caIssuers.find((name) =>
    name.type === "url" && name.value.startsWith(CA_ISSUERS_PREFIX)
  );
  if (url === undefined) return null;
  try {
    const der = Uint8Array.fromBase64(
      url.value.slice(CA_ISSUERS_PREFIX.length),
    );
    return new x509.X509Certificate(der).toString("pem") + "\n";
  } catch {
    return null;
  }
}

/**
 * Whether `leafDer` is signed by the CA in `caPem` (signature only; dates,
 * names and usages are for the TLS handshake to check).
 */
export async function isSignedBy(
  leafDer: Uint8Array<ArrayBuffer>,
  caPem: string,
): Promise<boolean> {
  try {
    const leaf = new x509.X509Certificate(leafDer);
    const ca = new x509.X509Certificate(caPem);
    return await leaf.verify({ publicKey: ca.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

interface Stored {
  caCertPem: string;
  certPem: string;
  keyPem: string;
  leaf: x509.X509Certificate;
}

function subjectNames(hostnames: string[]): string[] {
  const names: string[] = [...DEFAULT_NAMES];
  for (const raw of hostnames) {
    const name = raw.trim().replace(/^\[(.*)\]$/, "$1").toLowerCase();
    if (!/^[a-z0-9.:_-]+$/.test(name) || name.length > 253) {
      throw new TypeError(
        `Cannot put hostname "${raw}" in a certificate: not a host name or IP address`,
      );
    }
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

/** Whether `name` is an IP address (v4 dotted, or any v6) rather than a host name. */
export function isIp(name: string): boolean {
  return name.includes(":") || /^\d{1,3}(\.\d{1,3}){3}$/.test(name);
}

async function readStored(tlsDir: string): Promise<Stored | null> {
  let caCertPem: string;
  try {
    caCertPem = await Deno.readTextFile(join(tlsDir, FILES.ca));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  try {
    const certPem = await Deno.readTextFile(join(tlsDir, FILES.cert));
    const keyPem = await Deno.readTextFile(join(tlsDir, FILES.key));
    return {
      caCertPem,
      certPem,
      keyPem,
      leaf: new x509.X509Certificate(certPem),
    };
  } catch (error) {
    throw new Error(
      `Cannot load the certificates in "${tlsDir}": ${
        (error as Error).message
      } (delete the folder to make new ones; clients will see a new fingerprint)`,
      { cause: error },
    );
  }
}

function needsNewLeaf(leaf: x509.X509Certificate, names: string[]): boolean {
  if (leaf.notAfter.getTime() - Date.now() < RENEW_BEFORE_DAYS * DAY_MS) {
    return true;
  }
  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
  const present = new Set(
    san?.names.items.map((name) => name.value.toLowerCase()) ?? [],
  );
  return names.some((name) => !present.has(name));
}

async function createAll(
  dir: string,
  tlsDir: string,
  names: string[],
): Promise<Stored> {
  const caKeys = await crypto.subtle.generateKey(ALGORITHM, true, [
    "sign",
    "verify",
  ]);
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=ftv server CA ${crypto.randomUUID().slice(0, 8)}`,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + CA_DAYS * DAY_MS),
    keys: caKeys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leafKeys = await crypto.subtle.generateKey(ALGORITHM, true, [
    "sign",
    "verify",
  ]);
  const leaf = await issueLeaf(
    ca,
    caKeys.privateKey,
    leafKeys.publicKey,
    names,
  );
  const stored: Stored = {
    caCertPem: pem(ca),
    certPem: pem(leaf),
    keyPem: await keyPem(leafKeys.privateKey),
    leaf,
  };

  // Write into a fresh folder and rename it into place, so a reader never
  // sees half a set and two servers starting at once agree on one.
  const parent = join(dir, META_DIR);
  await Deno.mkdir(parent, { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: parent, prefix: "tls.tmp-" });
  try {
    await writeFile(
      join(tmp, FILES.caKey),
      await keyPem(caKeys.privateKey),
      0o600,
    );
    await writeFile(join(tmp, FILES.key), stored.keyPem, 0o600);
    await writeFile(join(tmp, FILES.ca), stored.caCertPem, 0o644);
    await writeFile(join(tmp, FILES.cert), stored.certPem, 0o644);
    await Deno.rename(tmp, tlsDir);
  } catch (error) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    const winner = await readStored(tlsDir);
    if (winner !== null) return winner;
    throw new Error(
      `Cannot write certificates to "${tlsDir}": ${(error as Error).message}`,
      { cause: error },
    );
  }
  return stored;
}

async function reissueLeaf(
  tlsDir: string,
  stored: Stored,
  names: string[],
): Promise<Stored> {
  const caKeyPath = join(tlsDir, FILES.caKey);
  let caKeyPem: string;
  try {
    caKeyPem = await Deno.readTextFile(caKeyPath);
  } catch (error) {
    throw new Error(
      `Cannot renew the certificate in "${tlsDir}" for ${
        names.map((name) => `"${name}"`).join(", ")
      }: cannot read "${caKeyPath}" (delete the folder to make new ones; clients will see a new fingerprint)`,
      { cause: error },
    );
  }
  const ca = new x509.X509Certificate(stored.caCertPem);
  const caKey = await importKey(caKeyPem);
  // Keep the leaf key: only cert.pem changes, in one atomic rename.
  const leafPublic = await stored.leaf.publicKey.export(ALGORITHM, ["verify"]);
  const leaf = await issueLeaf(ca, caKey, leafPublic, names);
  const certPem = pem(leaf);
  const target = join(tlsDir, FILES.cert);
  const tmp = `${target}.tmp-${crypto.randomUUID()}`;
  await writeFile(tmp, certPem, 0o644);
  await Deno.rename(tmp, target);
  return { ...stored, certPem, leaf };
}

async function issueLeaf(
  ca: x509.X509Certificate,
  caKey: CryptoKey,
  leafPublic: CryptoKey,
  names: string[],
): Promise<x509.X509Certificate> {
  const now = Date.now();
  return await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: "CN=ftv server",
    issuer: ca.subject,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + LEAF_DAYS * DAY_MS),
    signingKey: caKey,
    publicKey: leafPublic,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((value) => ({
          type: isIp(value) ? "ip" as const : "dns" as const,
          value,
        })),
      ),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
      await x509.SubjectKeyIdentifierExtension.create(leafPublic),
      // The CA travels inside the leaf so pin/TOFU clients can check it.
      new x509.AuthorityInfoAccessExtension({
        caIssuers: CA_ISSUERS_PREFIX + new Uint8Array(ca.rawData).toBase64(),
      }),
    ],
  });
}

function serialNumber(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x40; // positive, no leading zero byte
  return bytes.toHex();
}

function pem(cert: x509.X509Certificate): string {
  return cert.toString("pem") + "\n";
}

async function keyPem(key: CryptoKey): Promise<string> {
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(pkcs8, "PRIVATE KEY") + "\n";
}

async function importKey(pem: string): Promise<CryptoKey> {
  const der = pemBlocks(pem, "PRIVATE KEY")[0];
  if (der === undefined) {
    throw new SyntaxError(
      'Cannot read the CA key: no "BEGIN PRIVATE KEY" block',
    );
  }
  return await crypto.subtle.importKey("pkcs8", der, ALGORITHM, false, [
    "sign",
  ]);
}

function pemBlocks(pem: string, label: string): Uint8Array<ArrayBuffer>[] {
  const pattern = new RegExp(
    `-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]*?)-----END ${label}-----`,
    "g",
  );
  return [...pem.matchAll(pattern)].map((match) =>
    Uint8Array.fromBase64(match[1]!.replace(/\s+/g, ""))
  );
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot load ${what} "${path}": no such file`,
        { cause: error },
      );
    }
    throw error;
  }
}

async function writeFile(
  path: string,
  text: string,
  mode: number,
): Promise<void> {
  await Deno.writeTextFile(path, text, { mode, createNew: true });
  // `mode` is filtered by the umask; say it exactly where the OS can.
  if (Deno.build.os !== "windows") await Deno.chmod(path, mode);
}
