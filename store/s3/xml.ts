/**
 * Reading the small XML answers of S3 (`ListObjectsV2`, `ListParts`,
 * `InitiateMultipartUpload`, `<Error>`...): flat elements, read with a few
 * regular expressions and entity decoding; no XML library needed for them.
 *
 * @module
 */

const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
};

/** `text` with its XML entities (named and numeric) decoded. */
export function decodeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (all, name) => {
    if (name.startsWith("#x")) {
      return String.fromCodePoint(parseInt(name.slice(2), 16));
    }
    if (name.startsWith("#")) {
      return String.fromCodePoint(Number(name.slice(1)));
    }
    return ENTITIES[name] ?? all;
  });
}

/** `text` with `&`, `<` and `>` escaped, for an XML request body. */
export function encodeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(
    />/g,
    "&gt;",
  );
}

/** The decoded text of the first `<tag>` in `xml`, or `undefined`. */
export function tagText(xml: string, tag: string): string | undefined {
  const match = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(xml);
  return match ? decodeXml(match[1]!) : undefined;
}

/** The raw inner XML of every `<tag>` element in `xml`. */
export function elements(xml: string, tag: string): string[] {
  const found: string[] = [];
  const pattern = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g");
  for (const match of xml.matchAll(pattern)) found.push(match[1]!);
  return found;
}

/** An entity tag without its quotes (RGW 16 matches `If-Match` only so). */
export function bareEtag(etag: string | null | undefined): string {
  return (etag ?? "").replace(/^W\//, "").replace(/^"|"$/g, "");
}
