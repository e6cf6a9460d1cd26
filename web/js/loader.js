// Fetches the weights folder (manifest.json, the tokenizer, every stage file) with byte-level
// progress and hands each file to the wasm app, which checks it against the manifest's sha256.

async function fetchBytes(url, onChunk, signal) {
  let response;
  try {
    response = await fetch(url, { signal });
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

// Loads `base` (a folder URL ending in "/") into `app`; `progress(fraction, text)` reports.
// Resolves to the parsed manifest.
export async function loadWeights(app, base, progress) {
  progress(0, `Loading ${base}manifest.json…`);
  const manifestBytes = await fetchBytes(`${base}manifest.json`, () => {});
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
  // Stage entries carry their file's name, size and sha256 inline.
  const files = [manifest.tokenizer, ...manifest.stages, ...manifest.stages.map((s) => s.probes).filter(Boolean)];
  const total = files.reduce((sum, f) => sum + (f.bytes || 0), 0) || 1;
  let done = 0;
  const tick = (name) => (n) => {
    done += n;
    progress(Math.min(done / total, 1), `Loading ${name} (${(done / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB)`);
  };
  const tokenizer = await fetchBytes(`${base}${manifest.tokenizer.file}`, tick(manifest.tokenizer.file));
  app.load(manifestText, tokenizer);
  // What each stage is, in the page's words, from Rust (the manifest's `kind`): `stage.info`.
  for (const info of JSON.parse(app.stages())) {
    manifest.stages.find((s) => s.id === info.id).info = info;
  }
  // Stage files download in parallel; each is verified and parsed as it arrives. The first
  // failure stops the other downloads, so that no late progress report hides the error.
  const downloads = new AbortController();
  let failed = false;
  await Promise.all(
    manifest.stages.map(async (stage) => {
      try {
        const bytes = await fetchBytes(`${base}${stage.file}`, (n) => failed || tick(stage.file)(n), downloads.signal);
        if (!failed) app.addStage(stage.id, bytes);
        // The probes of its thoughts (what the inspector reads from each), checked the same way.
        if (stage.probes && !failed) {
          const file = stage.probes.file;
          const probes = await fetchBytes(`${base}${file}`, (n) => failed || tick(file)(n), downloads.signal);
          if (!failed) app.addProbes(stage.id, probes);
        }
      } catch (e) {
        if (!failed) {
          failed = true;
          downloads.abort();
          throw e;
        }
      }
    }),
  );
  progress(1, `Loaded ${manifest.stages.length} stages (${(total / 1e6).toFixed(1)} MB, sha256 checked)`);
  return manifest;
}
