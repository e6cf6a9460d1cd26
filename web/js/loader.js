// Fetches the weights folder (manifest.json, the tokenizer, every stage file) with byte-level
// progress and hands each file to the wasm app, which checks it against the manifest's sha256.
// The stage the page opens on comes first, so the first answer waits for one stage's weights,
// not all of them; the others follow in the background.

async function fetchBytes(url, onChunk) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`could not fetch ${url}: ${e.message}`);
  }
  if (!response.ok) throw new Error(`could not fetch ${url}: HTTP ${response.status}`);
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    onChunk(bytes.length);
    return bytes;
  }
  const reader = response.body.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
    onChunk(value.length);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return bytes;
}

// Starts downloading `base`'s manifest, which needs no app: the page calls it before the wasm is
// ready, so the two travel together. Its failure is reported where loadWeights awaits it.
export function fetchManifest(base) {
  const bytes = fetchBytes(`${base}manifest.json`, () => {});
  bytes.catch(() => {});
  return bytes;
}

// Loads `base` (a folder URL ending in "/") into `app`: the manifest, the tokenizer and the stage
// `first(manifest)` names (with its probes), reporting `progress(fraction, text)`. Resolves to
// { manifest, loaded }: `loaded(id)` is a promise of stage `id`'s weights, resolving to null or to
// the message of its failure (never rejecting). The first call for another stage starts the
// downloads of all the others (the page makes it once its first answer shows, so they never
// compete with the opening stage for a slow connection).
// `manifestFetch` is fetchManifest(base) when the page started it early.
export async function loadWeights(app, base, progress, first, manifestFetch = fetchManifest(base)) {
  progress(0, `Loading ${base}manifest.json…`);
  const manifestBytes = await manifestFetch;
  const manifestText = new TextDecoder().decode(manifestBytes);
  let manifest;
  try {
    manifest = JSON.parse(manifestText);
  } catch (e) {
    throw new Error(`${base}manifest.json is not JSON (${e.message}): is this a weights folder?`);
  }
  if (!Array.isArray(manifest.stages) || !manifest.tokenizer) {
    throw new Error(`${base}manifest.json lists no stages: is this a weights folder?`);
  }
  // The wasm side checks every name (plain file names inside the folder, core's rule, the same as
  // the command line's) and number before a single name becomes a URL below.
  try {
    app.checkManifest(manifestText);
  } catch (e) {
    throw new Error(`${base}${e.message}`);
  }
  const tokenizer = await fetchBytes(`${base}${manifest.tokenizer.file}`, () => {});
  app.load(manifestText, tokenizer);
  // What each stage is, in the page's words, from Rust (the manifest's `kind`): `stage.info`.
  for (const info of JSON.parse(app.stages())) {
    manifest.stages.find((s) => s.id === info.id).info = info;
  }
  const opening = manifest.stages.find((s) => s.id === first(manifest)) ?? manifest.stages[0];
  // A stage entry carries its file's name, size and sha256 inline, and its probes' (what the
  // inspector reads from each thought), checked the same way.
  const files = (stage) => [stage, stage.probes].filter(Boolean);
  const total = files(opening).reduce((sum, f) => sum + (f.bytes || 0), 0) || 1;
  let done = 0;
  const tick = (name) => (n) => {
    done += n;
    progress(Math.min(done / total, 1), `Loading ${name} (${(done / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB)`);
  };
  // A stage's weights and probes download side by side (one round trip, not two).
  const fetchStage = async (stage, onChunk) => {
    const [weights, probes] = await Promise.all(files(stage).map((f) => fetchBytes(`${base}${f.file}`, onChunk)));
    app.addStage(stage.id, weights);
    if (probes) app.addProbes(stage.id, probes);
  };
  // The carry flips measured on this folder (eval/flips.json, optional, 10 KB) come beside the
  // opening stage: the edit controls say what a flip did. Only a folder with probes has them.
  const flips = manifest.stages.some((s) => s.probes)
    ? fetch(`${base}eval/flips.json`).then((r) => (r.ok ? r.text() : null)).catch(() => null)
    : Promise.resolve(null);
  await fetchStage(opening, tick(opening.file));
  const flipsJson = await flips;
  if (flipsJson) {
    try {
      app.addFlips(flipsJson);
    } catch {
      // Not a list of flips: the edit controls say the flips were not measured.
    }
  }
  progress(1, `Loaded ${opening.id} (${(total / 1e6).toFixed(1)} MB, sha256 checked)`);
  const stages = new Map([[opening.id, Promise.resolve(null)]]);
  const loaded = (id) => {
    if (stages.size === 1 && id !== opening.id) {
      for (const stage of manifest.stages.filter((s) => s !== opening)) {
        stages.set(stage.id, fetchStage(stage, () => {}).then(
          () => null,
          (e) => `${stage.id} could not be loaded: ${e.message || String(e)}`,
        ));
      }
    }
    return stages.get(id) ?? Promise.resolve(null);
  };
  return { manifest, loaded };
}
