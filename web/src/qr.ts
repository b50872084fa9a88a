/// <reference lib="dom" />
/**
 * A QR code of the page's address, for opening it on a phone: drawn as
 * SVG (qrcode-generator), in a dialog. A page opened as `localhost` warns
 * that a phone needs the machine's network address instead.
 *
 * @module
 */

import qrcode from "qrcode-generator";

const SVG = "http://www.w3.org/2000/svg";

/** An SVG QR code of `text`, `size` CSS pixels wide, with a quiet zone. */
export function qrSvg(text: string, size = 240): SVGSVGElement {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  const count = qr.getModuleCount();
  const margin = 4;
  const span = count + 2 * margin;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${span} ${span}`);
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `QR code of ${text}`);
  svg.setAttribute("shape-rendering", "crispEdges");
  const background = document.createElementNS(SVG, "rect");
  background.setAttribute("width", String(span));
  background.setAttribute("height", String(span));
  background.setAttribute("fill", "#fff");
  let path = "";
  for (let row = 0; row < count; row++) {
    for (let col = 0; col < count; col++) {
      if (qr.isDark(row, col)) {
        path += `M${col + margin} ${row + margin}h1v1h-1z`;
      }
    }
  }
  const dark = document.createElementNS(SVG, "path");
  dark.setAttribute("d", path);
  dark.setAttribute("fill", "#000");
  svg.append(background, dark);
  return svg;
}

/** Whether `host` is this machine only, which a phone cannot reach. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host.startsWith("127.") || host === "[::1]";
}

/** Fills the dialog's parts for the current address. */
export function showQr(
  code: HTMLElement,
  url: HTMLElement,
  note: HTMLElement,
): void {
  const address = `${location.origin}/`;
  code.replaceChildren(qrSvg(address));
  url.textContent = address;
  note.textContent = isLoopback(location.hostname)
    ? "This page was opened as this machine only: a phone cannot reach that. Open it by the machine's network address (and start the server with --http-host 0.0.0.0 and a token) to get a code a phone can use."
    : "Scan it with the phone's camera; the phone must be on a network that reaches this server.";
}
