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

// A file of the folder, as its manifest entry describes it: one fetch, or its pieces (`shards`, a
// file over 64 MiB) fetched in order and joined. The wasm side checks the whole file's size and
// sha256 before it uses a byte.
async function fetchEntry(base, entry, onChunk) {
  if (!Array.isArray(entry.shards) || entry.shards.length === 0) {
    return fetchBytes(`${base}${entry.file}`, onChunk);
  }
  const bytes = new Uint8Array(entry.bytes);
  let at = 0;
  for (const shard of entry.shards) {
    const piece = await fetchBytes(`${base}${shard.file}`, onChunk);
    if (piece.length !== shard.bytes || at + piece.length > bytes.length) {
      throw new Error(`${shard.file} has ${piece.length} bytes, the manifest says ${shard.bytes}`);
    }
    bytes.set(piece, at);
    at += piece.length;
  }
  return bytes;
}

// Above this many bytes the page asks before downloading a stage (a visitor on a phone plan).
export const LARGE_BYTES = 100e6;

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
// compete with the opening stage for a slow connection). In a large folder (a stage over
// LARGE_BYTES) each stage downloads only when asked for, and only once `confirm(stage, bytes)`
// resolves to true (the page asks the visitor); a refusal is that stage's failure.
// `manifestFetch` is fetchManifest(base) when the page started it early.
export async function loadWeights(app, base, progress, first, manifestFetch = fetchManifest(base),
  confirm = async () => true) {
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
  const tokenizer = await fetchEntry(base, manifest.tokenizer, () => {});
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
  const large = manifest.stages.some((s) => files(s).reduce((sum, f) => sum + (f.bytes || 0), 0) > LARGE_BYTES);
  const fetchStage = async (stage, onChunk) => {
    const bytes = files(stage).reduce((sum, f) => sum + (f.bytes || 0), 0);
    if (bytes > LARGE_BYTES && !(await confirm(stage, bytes))) {
      throw new Error(`not downloaded (${(bytes / 1e6).toFixed(0)} MB): the download was declined`);
    }
    const [weights, probes] = await Promise.all(files(stage).map((f) => fetchEntry(base, f, onChunk)));
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
    const stage = manifest.stages.find((s) => s.id === id);
    if (large && stage && !stages.has(id)) {
      // One stage at a time, when it is chosen, with its own progress.
      const tickLarge = (n) => progress(0, `Loading ${stage.id} (${(n / 1e6).toFixed(1)} MB so far)`);
      let got = 0;
      stages.set(id, fetchStage(stage, (n) => tickLarge((got += n))).then(
        () => null,
        (e) => `${stage.id} could not be loaded: ${e.message || String(e)}`,
      ));
    }
    if (!large && stages.size === 1 && id !== opening.id) {
      for (const stage of manifest.stages.filter((s) => s !== opening)) {
        stages.set(stage.id, fetchStage(stage, () => {}).then(
          () => null,
          (e) => `${stage.id} could not be loaded: ${e.message || String(e)}`,
        ));
      }
    }
    return stages.get(id) ?? Promise.resolve(null);
  };
  return { manifest, loaded, large };
}
