// Builds the web UI into ui/assets/dist/ (or --out DIR): app.js, app.css, index.html
// naming them with their content hash (so browsers may cache them for good), and
// LICENSES.txt of the bundled packages. The output depends only on the sources and the
// locked packages, so `make ui-assets-check` can rebuild and diff it.
//
//   node build.mjs [--out DIR]    build
//   node build.mjs --tests        bundle test/*.test.mjs and run them with node --test

import { build } from "esbuild";
import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

/** Packages whose code ends up in app.js or app.css. */
const BUNDLED = ["@dagrejs/dagre", "@dagrejs/graphlib", "uplot"];

async function assets(out) {
  mkdirSync(out, { recursive: true });
  await build({
    absWorkingDir: here,
    entryPoints: { app: "src/main.ts" },
    bundle: true,
    minify: true,
    format: "esm",
    target: ["es2020", "chrome100", "firefox100", "safari15"],
    outdir: out,
    legalComments: "none",
    logLevel: "warning",
  });
  await build({
    absWorkingDir: here,
    entryPoints: { app: "src/style.css" },
    bundle: true,
    minify: true,
    outdir: out,
    legalComments: "none",
    logLevel: "warning",
  });
  const hash = (f) => createHash("sha256").update(readFileSync(join(out, f))).digest("hex").slice(0, 16);
  const html = readFileSync(join(here, "src/index.html"), "utf8")
    .replace("__APP_JS__", hash("app.js"))
    .replace("__APP_CSS__", hash("app.css"));
  writeFileSync(join(out, "index.html"), html);
  writeFileSync(join(out, "LICENSES.txt"), licenses());
}

function licenses() {
  const parts = BUNDLED.map((name) => {
    const dir = join(here, "node_modules", name);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
    const text = file ? readFileSync(join(dir, file), "utf8").trim() : `License: ${pkg.license}`;
    return `${name} ${pkg.version} (${pkg.license})\n\n${text}\n`;
  });
  return `Packages bundled into Squall's web UI:\n\n${parts.join("\n" + "-".repeat(72) + "\n\n")}`;
}

async function tests() {
  const dir = mkdtempSync(join(tmpdir(), "squall-ui-tests-"));
  try {
    const files = readdirSync(join(here, "test")).filter((f) => f.endsWith(".test.mjs"));
    await build({
      absWorkingDir: here,
      entryPoints: files.map((f) => join("test", f)),
      bundle: true,
      platform: "node",
      format: "esm",
      outdir: dir,
      outExtension: { ".js": ".mjs" },
      logLevel: "warning",
    });
    const r = spawnSync(process.execPath, ["--test", ...files.map((f) => join(dir, f))], { stdio: "inherit" });
    return r.status ?? 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (args.includes("--tests")) {
  process.exitCode = await tests();
} else {
  await assets(resolve(flag("--out") ?? join(here, "../assets/dist")));
}
