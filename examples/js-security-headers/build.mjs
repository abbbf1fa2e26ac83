// Builds plugin.js into a component with ComponentizeJS (SpiderMonkey).
// `weir build-js plugin.js` builds the same source with Weir's own runtime
// (QuickJS), with no Node.js, at about an eighth of the cost per hook.
//
//   node build.mjs [OUT.wasm]
//
// `jco componentize` fails on this machine (its preview2-shim has no
// filesystem access), so this calls `componentize()` directly. The `http`
// and `fetch-event` features are disabled: Weir plugins get no wasi:http.
// package.json pins @bytecodealliance/preview2-shim itself because
// ComponentizeJS 0.23 imports it at build time but lists it only as a dev
// dependency, so `npm ci` would otherwise leave it out.
//
// With $WEVAL_BIN set to a weval binary (`cargo install weval@0.5.1`; the
// npm package would download one from GitHub), the JavaScript engine's
// interpreter is partially evaluated ahead of time: the response hook gets
// about 20% faster and the component about 5 MB bigger (see
// docs/benchmarks.md).
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, 'js_security_headers.wasm'));
const { component } = await componentize({
  sourcePath: join(here, 'plugin.js'),
  witPath: join(here, '..', '..', 'wit'),
  worldName: 'weir:plugin/plugin',
  disableFeatures: ['http', 'fetch-event'],
  ...(process.env.WEVAL_BIN ? { enableAot: true, wevalBin: process.env.WEVAL_BIN } : {}),
});
await writeFile(out, component);
console.log(`wrote ${out} (${component.length} bytes)`);
