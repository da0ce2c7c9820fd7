// Builds dist/realtime.mjs (the ES module) and dist/realtime.js (a classic script: globals, or CommonJS
// under Node) from the one source, src/realtime.js, with nothing but Node: the source ends with a single
// `export { ... };` list, which the classic build turns into the object its wrapper returns.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const source = readFileSync(join(root, "src", "realtime.js"), "utf8").replace('"__VERSION__"', JSON.stringify(version));

const exportList = /\nexport \{([^}]*)\};\n$/;
const match = source.match(exportList);
if (!match) throw new Error("src/realtime.js must end with one `export { ... };` list");
const names = ["VERSION", ...match[1].split(",").map((name) => name.trim()).filter(Boolean)];
const body = source.replace(exportList, "\n").replace("export const VERSION", "const VERSION");
if (/^export /m.test(body)) throw new Error("src/realtime.js may export only through its final list");

const banner = `/* realtime client ${version}: built from src/realtime.js by build.mjs; do not edit. */\n`;
const classic = `${banner}(function (root, factory) {
  "use strict";
  const exported = factory();
  if (typeof module === "object" && module.exports) {
    module.exports = exported;
  } else {
    root.Realtime = exported;
    root.RealtimeClient = exported.RealtimeClient;
    root.RealtimeNotifier = exported.RealtimeNotifier;
  }
})(typeof self !== "undefined" ? self : this, function () {
"use strict";
${body}
return { ${names.join(", ")} };
});
`;

mkdirSync(join(root, "dist"), { recursive: true });
writeFileSync(join(root, "dist", "realtime.mjs"), banner + source);
writeFileSync(join(root, "dist", "realtime.js"), classic);
console.error(`built dist/realtime.mjs and dist/realtime.js (${version})`);
