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

// --- vendor scripts for offline HTML export (owned by attattr_widgets/export.py) -------------------------
// anywidget's front end is an AMD module with an anonymous `define(["@jupyter-widgets/base"], …)`; inlined
// into a page it must be named so html-manager's `requirejs(["anywidget"])` finds it without a CDN. Prefer
// the copy shipped by the Python package in .venv (same version as the kernel side), else node_modules.
{
  const { existsSync, readFileSync, writeFileSync } = await import("node:fs");
  const vendorDir = path.join(outdir, "vendor");
  mkdirSync(vendorDir, { recursive: true });
  const nm = (p) => path.join(root, "node_modules", p);
  const pyAnywidget = path.join(root, ".venv", "share", "jupyter", "nbextensions", "anywidget", "index.js");
  const anywidgetSrc = existsSync(pyAnywidget) ? pyAnywidget : nm("anywidget/dist/index.js");
  copyFileSync(nm("requirejs/require.js"), path.join(vendorDir, "require.min.js"));
  copyFileSync(nm("@jupyter-widgets/html-manager/dist/embed-amd.js"), path.join(vendorDir, "embed-amd.js"));
  let amd = readFileSync(anywidgetSrc, "utf8");
  if (!/define\(\s*"anywidget"/.test(amd)) {
    const re = /(^|[;\s])define\(\s*\[\s*"@jupyter-widgets\/base"\s*\]/g;
    const hits = amd.match(re) || [];
    if (hits.length !== 1) {
      throw new Error(`${anywidgetSrc} is not anywidget's AMD build (expected one define(["@jupyter-widgets/base"], …))`);
    }
    amd = amd.replace(re, '$1define("anywidget", ["@jupyter-widgets/base"]');
  }
  writeFileSync(path.join(vendorDir, "anywidget.js"), amd);
}

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else if (entries.length) {
  await esbuild.build(options);
}
