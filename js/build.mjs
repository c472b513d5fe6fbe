// Builds one ESM bundle per widget entry (every js/*.ts at the top level) into attattr_widgets/static/,
// and copies the three scripts that make exported HTML render offline (require.js, anywidget's AMD
// module, the ipywidgets HTML manager) into attattr_widgets/static/vendor/.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const outdir = path.join(root, "attattr_widgets", "static");
const watch = process.argv.includes("--watch");

const entries = readdirSync(path.join(root, "js"))
  .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts") && !f.includes(".test."))
  .map((f) => path.join(root, "js", f));

const options = {
  entryPoints: entries,
  bundle: true,
  format: "esm",
  target: "es2022",
  outdir,
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  define: { "define.amd": "false" },
  logLevel: "info",
};

mkdirSync(path.join(outdir, "vendor"), { recursive: true });
const nm = (p) => path.join(root, "node_modules", p);
const vendor = {
  "require.min.js": nm("requirejs/require.js"),
  "anywidget.js": nm("anywidget/dist/index.js"),
  "embed-amd.js": nm("@jupyter-widgets/html-manager/dist/embed-amd.js"),
};
for (const [name, src] of Object.entries(vendor)) copyFileSync(src, path.join(outdir, "vendor", name));

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else if (entries.length) {
  await esbuild.build(options);
}
