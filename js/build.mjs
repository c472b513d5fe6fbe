// Builds one ESM bundle per view (js/<view>/index.ts -> attattr_widgets/static/<view>.js + .css),
// and copies the three scripts that make exported HTML render offline (require.js, anywidget's AMD
// module, the ipywidgets HTML manager) into attattr_widgets/static/vendor/.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const outdir = path.join(root, "attattr_widgets", "static");
const watch = process.argv.includes("--watch");

// one bundle per view folder: explorer.js, heads.js, tree.js, triggers.js (the names the Python classes load)
const VIEWS = ["explorer", "heads", "tree", "triggers"];
const entries = Object.fromEntries(VIEWS.map((v) => [v, path.join(root, "js", v, "index.ts")]));

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
} else {
  await esbuild.build(options);
}
