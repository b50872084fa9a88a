/// <reference lib="dom" />
/**
 * The page's few DOM helpers: build an element with its attributes and
 * children, find one that must be there, and announce a message to screen
 * readers. Text is always set as text, never parsed as HTML.
 *
 * @module
 */

/** Attributes of {@linkcode el}: strings, booleans (present or not) and `on*` listeners. */
export type Attributes = Record<
  string,
  string | number | boolean | undefined | ((event: Event) => void)
>;

/** A child of {@linkcode el}: a node, text, or nothing. */
export type Child = Node | string | undefined | null | false;

/** A new `<tag>` with `attributes` and `children`. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  element.append(...children.filter((child) => child || child === "") as (
    | Node
    | string
  )[]);
  return element;
}

/** The element with id `id`, which the page must have. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`Cannot start the page: #${id} is missing`);
  return found as T;
}

/** Replaces the children of `parent` with `children`. */
export function fill(parent: Element, ...children: Child[]): void {
  parent.replaceChildren(
    ...children.filter((child) => child || child === "") as (Node | string)[],
  );
}

/** Tells screen readers `text` through the page's live region. */
export function announce(text: string): void {
  const region = document.getElementById("announce");
  if (region) region.textContent = text;
}

/** Copies `text` to the clipboard; whether it worked (not in every context). */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard outside secure contexts: select a temporary field instead.
    const field = el("textarea", { readonly: true, class: "offscreen" }, text);
    document.body.append(field);
    field.select();
    const copied = document.execCommand("copy");
    field.remove();
    return copied;
  }
}
