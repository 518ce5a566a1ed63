// The host view (docs/quiz.md, "The host view"): the page on a projector. It joins the room like a player but
// never answers; view.js draws the question large, the seconds left, "N of M answered", the reveal with how many
// picked each tile and the podium (style.css, body[data-mode=host]). This module adds what only the projector
// shows: the join PIN and a QR code of the join link, drawn in the browser by qrcode-generator (npm, MIT,
// vendored like Strophe.js: quizbot/web/vendor/). app.js loads it on demand, so a phone never fetches it.
import { t } from "./i18n.js";
import { $, show } from "./view.js";

const SVG = "http://www.w3.org/2000/svg";

export function enter() {
  document.body.dataset.mode = "host";
  show("host-join");
}

// The QR code as one SVG path (no markup from strings: the link is data, drawn module by module).
async function drawQr(box, link) {
  const { default: qrcode } = await import("/quiz/lib/qrcode.mjs");
  const code = qrcode(0, "M"); // the smallest version that holds the link; M: still reads with 15 % damaged
  code.addData(link);
  code.make();
  const size = code.getModuleCount();
  const quiet = 4; // ISO/IEC 18004: four modules of margin
  let path = "";
  for (let row = 0; row < size; row += 1) {
    for (let col = 0; col < size; col += 1) {
      if (code.isDark(row, col)) path += `M${col + quiet} ${row + quiet}h1v1h-1z`;
    }
  }
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${size + 2 * quiet} ${size + 2 * quiet}`);
  svg.setAttribute("shape-rendering", "crispEdges");
  svg.setAttribute("aria-hidden", "true");
  const background = document.createElementNS(SVG, "rect");
  background.setAttribute("width", "100%");
  background.setAttribute("height", "100%");
  background.setAttribute("fill", "#fff");
  const modules = document.createElementNS(SVG, "path");
  modules.setAttribute("d", path);
  modules.setAttribute("fill", "#000");
  svg.append(background, modules);
  box.replaceChildren(svg);
  box.dataset.link = link;
}

// The join panel: PIN (when the bot has told it), the link, and its QR code.
export async function showJoin({ link, pin }) {
  $("host-pin").textContent = pin || "–";
  $("join-at").textContent = t("join-at", { url: link });
  if ($("qr").dataset.link !== link) await drawQr($("qr"), link);
}
