// The page: waits for the wasm app, loads the weights, picks the engine, and wires the controls.
// URL parameters (also the contract for automated tests): a, b, stage, animate=0 (no animation on
// this page: every answer shows at once), weights=<folder URL>, engine=webgpu|reference (forced;
// by default a software WebGPU adapter gets the reference engine), projector=1, chapter=N,
// patch=<edits>. With a and b the page solves on load (`?a=347+285` alone is the problem too);
// `+` reads as a plus, as typed (address.js). Without them, a first visit shows the answer at
// once and invites the animation.

import { fetchManifest, loadWeights, LARGE_BYTES } from './loader.js';
import { Player } from './player.js';
import { renderInspector, clearInspector } from './inspector.js';
import { editor } from './edit.js';
import { measurer } from './measure.js';
import { chapters } from './walkthrough.js';
import { renderAccuracy, stageLabel, stageAbout, stageInfo } from './panels.js';
import { readParams, updateAddress } from './address.js';

const $ = (id) => document.getElementById(id);
const params = readParams();
const el = {
  a: $('a'), b: $('b'), stage: $('stage'), solve: $('solve'), random: $('random'), preset: $('preset'),
  form: $('problem-form'), error: $('error'), aError: $('a-error'), bError: $('b-error'),
  answer: $('answer'), verdict: $('verdict'), engine: $('engine'), notice: $('engine-notice'),
  status: $('status'), progress: $('progress'), fatal: $('fatal'), stageAbout: $('stage-about'),
  compare: $('compare'), compareTable: $('compare-table'), accuracy: $('accuracy'),
  accuracyNote: $('accuracy-note'), testN: $('test-n'), testRun: $('test-run'), testResult: $('test-result'),
  projector: $('projector'), chapter: $('chapter'), chapterTitle: $('chapter-title'),
  chapterPrev: $('chapter-prev'), chapterNext: $('chapter-next'), sizeNote: $('size-note'),
  measureKind: $('measure-kind'), measureN: $('measure-n'), measureRun: $('measure-run'),
  measureResult: $('measure-result'), measureTable: $('measure-table'),
  answerNote: $('answer-note'), watchRow: $('watch-row'), watch: $('watch'), weightsNote: $('weights-note'),
};
// Controls that need the model: disabled until it has loaded.
const testSizes = [...document.querySelectorAll('[data-test-n]')];
const modelControls = [el.solve, el.random, el.preset, el.stage, el.compare, el.testRun, el.measureRun, ...testSizes];
const animateByDefault = params.get('animate') !== '0';

let app = null;
let manifest = null;
let lastView = null;
let chapterList = [];
let chapterIndex = 0;
// Why the page runs the engine it runs, when that needs saying (kept: every solve redraws it).
let engineNotice = '';
// The solved view whose answer waits for the animation to reach it.
let unrevealed = null;
// Set to stop a running "test it here".
let stopTest = false;
// An edit from the address (`?patch=`): it runs once the answer it edits is on screen, so that
// its result (with the true sum) never shows ahead of the model's own answer.
let pendingPatch = params.get('patch') || null;
// One model call at a time: the engine holds one generation at a time.
let queue = Promise.resolve();
// Every stage's weights, as loadWeights hands them over: `stageLoaded(id)` resolves to null or to
// why the stage could not be loaded. The opening stage is in before the first answer; the others
// download after it (or as soon as a job wants one).
let stageLoads = () => Promise.resolve(null);
const stageLoaded = (id) => stageLoads(id);
// Model work runs one job at a time, each once the selected stage's weights are in.
const exclusive = (job) => (queue = queue.then(() => stageLoaded(el.stage.value)).then(job, job));

function fatal(message) {
  el.fatal.hidden = false;
  el.fatal.replaceChildren();
  const text = document.createElement('span');
  text.textContent = `The engine stopped on an internal error: ${message}. The page still works; reload to restart the engine. `;
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = 'Reload';
  button.addEventListener('click', () => location.reload());
  el.fatal.append(text, button);
}
window.addEventListener('coconut-panic', (e) => fatal(String(e.detail)));
window.addEventListener('unhandledrejection', (e) => {
  e.preventDefault();
  fatal(e.reason?.message || String(e.reason));
});

// The wasm app, once its module has loaded and started; its download shows on the progress bar
// (web/initializer.js reports it) and a failure ends the wait with a visible reason.
function waitForApp() {
  if (window.coconut) return Promise.resolve(window.coconut);
  return new Promise((resolve, reject) => {
    const report = (state) => {
      if (!state) return;
      if (state.failed) {
        reject(new Error(`the engine (wasm) could not load: ${state.failed}`));
      } else if (state.total > 0 && el.status.dataset.state === 'loading') {
        el.progress.value = 0.5 * Math.min(state.current / state.total, 1);
        el.status.textContent = `Loading the engine (${(state.current / 1e6).toFixed(1)} of ${(state.total / 1e6).toFixed(1)} MB)…`;
      }
    };
    report(window.coconutWasm);
    window.addEventListener('coconut-wasm', (e) => report(e.detail));
    // A script of the engine that fails to load stops it before its download even starts.
    window.addEventListener('error', (e) => {
      const t = e.target;
      if (t instanceof HTMLScriptElement || (t instanceof HTMLLinkElement && t.rel === 'modulepreload')) {
        reject(new Error(`the engine could not load ${t.src || t.href || 'its script'}`));
      }
    }, true);
    setTimeout(() => {
      if (!window.coconut && !window.coconutWasm?.total) {
        reject(new Error('the engine (wasm) did not start within 60 s: its files could not be loaded'));
      }
    }, 60_000);
    window.addEventListener('coconut-ready', () => resolve(window.coconut), { once: true });
  });
}

function loadFailed(message) {
  el.status.dataset.state = 'failed';
  el.status.textContent = `Could not load the model: ${message}`;
  el.progress.hidden = true;
  el.engine.dataset.engine = 'none';
  el.engine.textContent = 'Not running: the model could not load';
}

const inspectorEls = {
  title: $('inspector-title'), width: $('width'), heatStrip: $('heat-strip'), topk: $('topk'),
  topkNote: $('topk-note'), similarity: $('similarity'), simNote: $('similarity-note'), attention: $('attention'),
  probesBox: $('probes-box'), probes: document.querySelector('#probes tbody'), probesNote: $('probes-note'),
};
let selected = 0;
const edits = editor(
  {
    box: $('edit-box'), zero: $('edit-zero'), flip: $('edit-flip'), column: $('edit-column'),
    from: $('edit-from'), replace: $('edit-replace'), result: $('edit-result'),
    flipNote: $('flip-note'), none: $('edit-none'),
  },
  () => app,
  // An edit applies to the problem on screen, not to numbers typed since.
  () => (lastView
    ? { a: String(lastView.a), b: String(lastView.b), stage: lastView.stage, view: lastView, pos: selected }
    : { a: el.a.value.trim(), b: el.b.value.trim(), stage: el.stage.value, view: null, pos: selected }),
);
const player = new Player(
  {
    timeline: $('timeline'), play: $('play'), stepBack: $('step-back'), stepForward: $('step-forward'),
    scrub: $('scrub'), speed: $('speed'), position: $('position'), stack: $('stack'),
  },
  (pos) => {
    selected = pos;
    if (lastView && lastView.positions.length > 0) {
      renderInspector(inspectorEls, lastView, pos, (i) => player.tokenName(i));
    }
    edits.show(lastView, pos);
    // The answer shows once the animation (or the viewer) reaches the end of the sequence.
    if (unrevealed && pos >= unrevealed.tokens.length - 1) showAnswer(unrevealed);
  },
);

function showEngine() {
  const webgpu = app.backend === 'webgpu';
  el.engine.dataset.engine = app.backend;
  el.engine.textContent = webgpu ? 'Running on your GPU (WebGPU)' : 'Running on your CPU (reference engine)';
  el.engine.title = el.engine.dataset.adapter || '';
  const notice = app.notice ? `Running on the reference engine: ${app.notice}` : engineNotice;
  el.notice.hidden = !notice;
  el.notice.textContent = notice;
}

// A WebGPU adapter that is software on the CPU (SwiftShader, llvmpipe, lavapipe): there the
// reference engine is far faster (BENCHMARKS.md, "The page": 8.0 against 55.6 ms per problem in
// headless Chromium on SwiftShader, even with the GPU solving a hundred problems per submission).
// Returns its description, or null for a hardware GPU.
async function softwareAdapter() {
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info ?? {};
    const text = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
    const software = adapter.isFallbackAdapter || info.isFallbackAdapter ||
      /swiftshader|llvmpipe|lavapipe|software|basic render/i.test(text);
    return software ? (text || 'a software fallback adapter') : null;
  } catch {
    return null;
  }
}

async function chooseEngine() {
  const wanted = params.get('engine');
  if (wanted === 'reference') {
    app.useReference();
  } else if (!navigator.gpu) {
    app.useReference();
    engineNotice = 'This browser has no WebGPU, so the model runs on the reference engine ' +
      '(Rust compiled to wasm, on the CPU): the same answers, more slowly.';
  } else {
    const software = wanted === 'webgpu' ? null : await softwareAdapter();
    if (software) {
      app.useReference();
      engineNotice = `WebGPU here is a software renderer on the CPU (${software}), where the reference engine ` +
        '(Rust compiled to wasm) is about 7 times faster, so it runs the model: the same answers. ' +
        'Add engine=webgpu to the address to use WebGPU anyway.';
    } else {
      try {
        el.engine.dataset.adapter = await app.useWebGpu();
      } catch {
        // app.notice says why; the reference engine is selected.
      }
    }
  }
  showEngine();
}

function showStageAbout() {
  el.stageAbout.textContent = stageAbout(manifest.stages.find((s) => s.id === el.stage.value));
}

function setFieldErrors(errors) {
  el.aError.textContent = errors.a || '';
  el.bError.textContent = errors.b || '';
  el.a.setAttribute('aria-invalid', String(Boolean(errors.a)));
  el.b.setAttribute('aria-invalid', String(Boolean(errors.b)));
}

// A refused input clears the last problem: its animation must not go on beside the error.
function refuse(message) {
  el.error.textContent = message;
  unrevealed = null;
  lastView = null;
  player.clear();
  clearInspector(inspectorEls);
  edits.show(null, -1);
  el.answer.dataset.state = 'error';
  el.answer.textContent = '';
  el.answer.dataset.text = '';
  el.answer.dataset.correct = '';
  el.verdict.textContent = '';
  el.verdict.className = '';
  el.sizeNote.textContent = '';
  el.answerNote.textContent = '';
  el.watchRow.hidden = true;
}

// The answer with the one verdict the engine gives (core's answer rule, leading zeros read and
// explained), and what the manifest measured for this kind of problem.
function showAnswer(view) {
  unrevealed = null;
  const v = view.verdict;
  // No answer leaves #answer empty (the page's contract); style.css writes "(none)" there.
  el.answer.textContent = v.answer ?? '';
  el.answer.dataset.text = view.text;
  el.answer.dataset.correct = String(v.correct);
  el.answer.dataset.state = 'done';
  const sum = `${view.a} + ${view.b} = ${v.expected}`;
  el.verdict.textContent = v.correct
    ? `${v.mark} correct (${sum})`
    : v.answer === null || v.answer === undefined
      ? `${v.mark} the model wrote no answer${view.finished ? '' : ' before the position limit'}; the right one is ${sum}`
      : `${v.mark} wrong: the right answer is ${sum}`;
  el.verdict.className = v.correct ? 'right' : 'wrong';
  el.answerNote.textContent = v.leading_zeros ?? '';
  el.sizeNote.textContent = view.measured_note;
  el.watchRow.hidden = view.positions.length === 0;
  if (pendingPatch) {
    const patch = pendingPatch;
    pendingPatch = null;
    exclusive(async () => edits.run(patch));
  }
}

// The address always reproduces what is on screen, so that it can be shared.
function updateUrl() {
  updateAddress({
    a: el.a.value.trim(),
    b: el.b.value.trim(),
    stage: el.stage.value,
    chapter: String(chapterIndex),
    projector: document.body.classList.contains('projector') ? '1' : null,
  });
}

function solve(animate = true) {
  stopTest = true; // a new problem takes over from a running "test it here"
  return exclusive(async () => {
    if (!app || !manifest) return;
    const [a, b, stage] = [el.a.value, el.b.value, el.stage.value];
    const errors = JSON.parse(app.check(a, b, stage));
    setFieldErrors(errors);
    if (errors.a || errors.b) {
      refuse(errors.summary);
      return;
    }
    el.error.textContent = '';
    edits.clear();
    el.answer.dataset.state = 'running';
    el.answer.textContent = '…';
    el.verdict.textContent = '';
    el.sizeNote.textContent = '';
    el.answerNote.textContent = '';
    el.watchRow.hidden = true;
    updateUrl();
    try {
      const view = JSON.parse(await app.solve(a, b, stage, true));
      lastView = view;
      const play = animate && animateByDefault && view.positions.length > 0;
      if (play) {
        // Revealed when the animation reaches the end (the player's onSelect).
        unrevealed = view;
        el.answer.dataset.state = 'playing';
        el.answer.textContent = '…';
      } else {
        showAnswer(view);
      }
      player.show(view, play);
    } catch (e) {
      refuse(e.message || String(e));
    }
    showEngine();
  });
}

function compareStages() {
  const all = Promise.all(manifest ? manifest.stages.map((s) => stageLoaded(s.id)) : []);
  return exclusive(async () => {
    const [a, b] = [el.a.value, el.b.value];
    const body = el.compareTable.tBodies[0];
    body.replaceChildren();
    el.compareTable.dataset.state = 'running';
    await all; // every stage's weights (a failed one says so in its row)
    // Checked for the selected stage; a stage that refuses the length says so in its row.
    const errors = JSON.parse(app.check(a, b, el.stage.value));
    if (errors.a || errors.b) {
      setFieldErrors(errors);
      refuse('Fix the numbers above to compare the stages.');
      el.compareTable.dataset.state = 'error';
      return;
    }
    for (const s of manifest.stages) {
      const row = body.insertRow();
      row.dataset.stage = s.id;
      row.insertCell().textContent = stageLabel(s);
      const thoughts = row.insertCell();
      thoughts.textContent = String(s.thoughts);
      const seq = row.insertCell();
      seq.className = 'seq';
      const answer = row.insertCell();
      answer.className = 'answer';
      const rate = row.insertCell();
      rate.textContent = '—';
      try {
        const view = JSON.parse(await app.solve(a, b, s.id, false));
        // With coupled positions the count follows the problem's columns.
        const slots = view.tokens.filter((t) => t.kind === 'thought' || t.kind === 'pause');
        thoughts.textContent = String(slots.length);
        seq.textContent = view.text.replace(/^.*?<bot>\s*/, '');
        answer.textContent = `${view.verdict.answer ?? '(none)'} ${view.verdict.mark}`;
        row.classList.add(view.verdict.correct ? 'right' : 'wrong');
        // The manifest's figure for this problem's own kind (core's lookup), or that there is none.
        const m = view.measured;
        rate.textContent = m ? `${m.greedy.toFixed(1)}% (n = ${m.n})` : 'not measured for this kind of problem';
      } catch (e) {
        answer.textContent = e.message;
      }
    }
    el.compareTable.dataset.state = 'done';
    showEngine();
  });
}

function testHere() {
  if (el.testRun.dataset.running === 'true') {
    stopTest = true;
    return queue;
  }
  stopTest = false;
  return exclusive(async () => {
    const n = Math.round(Number(el.testN.value));
    if (!Number.isFinite(n) || n < 1 || n > 5000) {
      el.testResult.dataset.state = 'error';
      el.testResult.textContent = 'Choose between 1 and 5000 problems.';
      return;
    }
    const stage = el.stage.value;
    el.testResult.dataset.state = 'running';
    el.testRun.dataset.running = 'true';
    el.testRun.textContent = 'Stop';
    let correct = 0;
    let done = 0;
    const start = performance.now();
    try {
      // The held-out test problems the published figures were measured on, in their order: on
      // WebGPU a hundred per submission (the solver decodes them side by side), on the
      // reference engine a few at a time so the page stays responsive.
      while (done < n && !stopTest) {
        const chunk = app.backend === 'webgpu' ? 100 : 10;
        const r = JSON.parse(await app.testBatch(stage, done, Math.min(chunk, n - done)));
        if (r.done === 0) break;
        done += r.done;
        correct += r.correct;
        const rate = done / ((performance.now() - start) / 1000);
        el.testResult.textContent = `${done} of ${n}: ${correct} correct `
          + `(${((100 * correct) / done).toFixed(1)}%), ${rate.toFixed(1)} problems per second…`;
        await new Promise((res) => setTimeout(res, 0));
      }
    } catch (e) {
      el.testResult.dataset.state = 'error';
      el.testResult.textContent = `The test run failed: ${e.message || String(e)}`;
      return;
    } finally {
      el.testRun.dataset.running = 'false';
      el.testRun.textContent = 'Run';
    }
    const seconds = (performance.now() - start) / 1000;
    const rate = done / seconds;
    const stopped = done < n ? ` (stopped after ${done} of ${n})` : '';
    Object.assign(el.testResult.dataset, {
      state: done < n ? 'stopped' : 'done', n: String(done), correct: String(correct), perSecond: rate.toFixed(2),
    });
    el.testResult.textContent = done === 0 ? 'Stopped before the first problem.' :
      `${correct} of the first ${done} held-out test problems correct ` +
      `(${((100 * correct) / done).toFixed(1)}%) on ${stage}${stopped}, ` +
      `${rate.toFixed(1)} problems per second on the ${app.backend === 'webgpu' ? 'WebGPU' : 'reference'} engine`;
    showEngine();
  });
}

function showChapter(i, run = true) {
  if (chapterList.length === 0) return;
  chapterIndex = Math.max(0, Math.min(i, chapterList.length - 1));
  const ch = chapterList[chapterIndex];
  el.chapter.dataset.chapter = String(chapterIndex);
  el.chapterTitle.textContent = `${chapterIndex + 1}/${chapterList.length} · ${ch.title}`;
  el.chapter.innerHTML = ch.text;
  el.chapterPrev.disabled = chapterIndex === 0;
  el.chapterNext.disabled = chapterIndex === chapterList.length - 1;
  if (run && ch.stage) {
    el.stage.value = ch.stage;
    [el.a.value, el.b.value] = ch.problem;
    showStageAbout();
    solve(true);
  }
}

function setProjector(on) {
  document.body.classList.toggle('projector', on);
  el.projector.setAttribute('aria-pressed', String(on));
  player.draw();
  if (manifest) updateUrl();
}

function wire() {
  el.form.addEventListener('submit', (e) => {
    e.preventDefault();
    solve(true);
  });
  el.random.addEventListener('click', () => {
    if (!manifest) return;
    [el.a.value, el.b.value] = JSON.parse(app.randomProblem());
    solve(true);
  });
  // An example is "a+b", or "a+b@stage" when it is about one stage (the labelled failure).
  el.preset.addEventListener('change', () => {
    const [problem, stage] = el.preset.value.split('@');
    const [a, b] = problem.split('+');
    if (a === undefined || b === undefined) return;
    el.a.value = a;
    el.b.value = b;
    if (stage && manifest.stages.some((s) => s.id === stage)) {
      el.stage.value = stage;
      showStageAbout();
    }
    el.preset.value = '';
    solve(true);
  });
  el.stage.addEventListener('change', () => {
    showStageAbout();
    solve(true);
  });
  for (const input of [el.a, el.b]) {
    input.addEventListener('input', () => {
      if (!app || !manifest) return;
      setFieldErrors(JSON.parse(app.check(el.a.value || '0', el.b.value || '0', el.stage.value)));
    });
  }
  el.compare.addEventListener('click', compareStages);
  el.testRun.addEventListener('click', testHere);
  for (const b of testSizes) {
    b.addEventListener('click', () => {
      if (el.testRun.dataset.running === 'true') return;
      el.testN.value = b.dataset.testN;
      testHere();
    });
  }
  measurer(
    { kind: el.measureKind, n: el.measureN, run: el.measureRun, result: el.measureResult, table: el.measureTable },
    () => app, () => el.stage.value, exclusive,
  );
  el.projector.addEventListener('click', () => setProjector(!document.body.classList.contains('projector')));
  el.watch.addEventListener('click', () => {
    player.seek(0);
    player.play();
  });
  el.chapterPrev.addEventListener('click', () => showChapter(chapterIndex - 1));
  el.chapterNext.addEventListener('click', () => showChapter(chapterIndex + 1));
  // Keys: space plays or pauses, ← → step, Home/End jump to the first or last position. They
  // work everywhere but in the text fields; on a focused dropdown ← → step too (its ↑ ↓ still
  // change it), so that a stage picked with the mouse does not swallow the keys.
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (e.key === 'Escape' && document.body.classList.contains('projector')) {
      setProjector(false);
      return;
    }
    if (t instanceof HTMLInputElement && !['range', 'button', 'submit'].includes(t.type)) return;
    if (t instanceof HTMLTextAreaElement) return;
    const onSelect = t instanceof HTMLSelectElement;
    const onRange = t instanceof HTMLInputElement && t.type === 'range';
    if (e.key === ' ' && !(t instanceof HTMLButtonElement) && !onSelect) {
      e.preventDefault();
      player.toggle();
    } else if ((e.key === 'ArrowRight' || e.key === 'ArrowLeft') && !onRange) {
      e.preventDefault();
      player.step(e.key === 'ArrowRight' ? 1 : -1);
    } else if ((e.key === 'Home' || e.key === 'End') && !onRange && !onSelect) {
      e.preventDefault();
      player.seek(e.key === 'Home' ? 0 : Infinity);
    }
  });
}

// Examples the loaded model refuses (the seed's GPT-2 takes two operands of one length, 2 to 4
// digits; a folder may lack the stage an example names) are not offered.
function hideRefusedExamples() {
  for (const option of el.preset.options) {
    if (!option.value) continue;
    const [problem, stage] = option.value.split('@');
    const [a, b] = problem.split('+');
    const errors = JSON.parse(app.check(a, b, stage ?? el.stage.value));
    const missing = stage && !manifest.stages.some((s) => s.id === stage);
    option.hidden = option.disabled = Boolean(errors.a || errors.b || missing);
  }
}

// Waits for the stages loading behind the first answer and says how that went; a stage that
// failed cannot be chosen and names why.
async function allStagesLoaded() {
  const failures = (await Promise.all(manifest.stages.map((s) => stageLoaded(s.id)))).filter(Boolean);
  for (const option of el.stage.options) {
    const failure = await stageLoaded(option.value);
    if (failure) {
      option.disabled = true;
      option.textContent += ' (could not be loaded)';
    }
  }
  const n = manifest.stages.length;
  el.status.textContent = failures.length === 0
    ? `Loaded all ${n} stages (sha256 checked)`
    : `Loaded ${n - failures.length} of ${n} stages: ${failures.join('; ')}`;
  // A failure stays at the top, where it matters; a clean load is said down here.
  if (failures.length > 0) $('loading').dataset.failed = 'true';
  el.weightsNote.textContent = failures.length === 0
    ? `All ${n} stages are loaded; every file matched the size and sha256 checksum that manifest.json gives for it.`
    : el.status.textContent;
}

// A folder with a stage over LARGE_BYTES (an imported GPT-2): stages load one by one on demand.
let largeFolder = false;

// Asks before a download of more than LARGE_BYTES; resolves to whether the visitor agreed. One
// question at a time ("Compare all stages" wants every stage at once).
let asking = Promise.resolve();
function askLarge(stage, bytes) {
  const turn = asking.then(() => askOne(stage, bytes));
  asking = turn.catch(() => {});
  return turn;
}

function askOne(stage, bytes) {
  const box = $('large-ask');
  $('loading').dataset.failed = 'true'; // keep the line visible while it asks
  el.status.textContent = `${stageLabel(stage)} is ${(bytes / 1e6).toFixed(0)} MB to download. Download it?`;
  box.hidden = false;
  return new Promise((resolve) => {
    const answer = (yes) => () => {
      box.hidden = true;
      delete $('loading').dataset.failed;
      $('large-yes').onclick = $('large-no').onclick = null;
      el.status.textContent = yes ? `Downloading ${stage.id}…` : `${stage.id} was not downloaded.`;
      resolve(yes);
    };
    $('large-yes').onclick = answer(true);
    $('large-no').onclick = answer(false);
    $('large-yes').focus();
  });
}

async function main() {
  if (params.get('projector') === '1') setProjector(true);
  wire();
  let base = params.get('weights') || 'weights/';
  if (!base.endsWith('/')) base += '/';
  const manifestFetch = fetchManifest(base); // beside the wasm's download
  try {
    app = await waitForApp();
  } catch (e) {
    loadFailed(e.message);
    return;
  }
  // The page opens on ?stage= if the folder has it, else on the all-latent stage: what the page
  // is about. Its weights come first.
  const wantedStage = params.get('stage');
  const opening = (m) => (m.stages.some((s) => s.id === wantedStage) ? wantedStage
    : (m.stages.find((s) => stageInfo(s).allLatent) || m.stages[0]).id);
  try {
    // The weights are the second half of the bar (the engine was the first).
    const loaded = await loadWeights(app, base, (fraction, text) => {
      if (el.status.dataset.state === 'loading') el.progress.value = 0.5 + 0.5 * fraction;
      if (el.status.dataset.state === 'loading' || largeFolder) el.status.textContent = text;
    }, opening, manifestFetch, askLarge);
    manifest = loaded.manifest;
    stageLoads = loaded.loaded;
    largeFolder = loaded.large;
  } catch (e) {
    loadFailed(e.message || String(e));
    return;
  }
  for (const s of manifest.stages) {
    const option = document.createElement('option');
    option.value = s.id;
    option.textContent = stageLabel(s);
    el.stage.append(option);
  }
  el.stage.value = opening(manifest);
  showStageAbout();
  const model = JSON.parse(app.model());
  const size = `${model.n_layer}-layer GPT-2 with ${(model.n_params / 1e6).toFixed(2)}M parameters`;
  if (model.family === 'seed') {
    // An imported checkpoint of the seed's family: not ours, not trained here.
    $('model-facts').textContent = `a ${size} of the seed's family (GPT-2's ${model.vocab_size}-token vocabulary)`;
    $('model-origin').textContent = 'imported from its PyTorch checkpoint and run by this project\'s engine';
  } else {
    $('model-facts').textContent = `a ${size}`;
  }
  hideRefusedExamples();
  renderAccuracy(el.accuracy, el.accuracyNote, manifest);
  await chooseEngine();
  el.status.dataset.state = 'ready';
  el.progress.hidden = true;
  // The loading line has said its piece (style.css hides it; a stage that fails to load later
  // brings it back with the reason).
  $('loading').dataset.done = 'true';
  for (const c of modelControls) c.disabled = false;
  chapterList = chapters(manifest);
  const chapter = Number(params.get('chapter'));
  // `?a=347+285` alone is the problem, as typed.
  const whole = params.has('b') ? -1 : (params.get('a') ?? '').indexOf('+');
  const [a, b] = whole >= 0
    ? [params.get('a').slice(0, whole), params.get('a').slice(whole + 1)]
    : [params.get('a'), params.get('b')];
  if (a !== null && b !== null) {
    el.a.value = a.trim();
    el.b.value = b.trim();
    showChapter(Number.isInteger(chapter) ? chapter : 0, false);
    // An edit in the address (`?patch=0=zero`) runs on the problem it came with, once its
    // answer shows (showAnswer).
    await solve(true);
  } else {
    showChapter(Number.isInteger(chapter) ? chapter : 0, params.has('chapter'));
    // A first visit: the answer at once, the animation one click away (#watch).
    if (!params.has('chapter')) await solve(false);
  }
  if (largeFolder) {
    // Every stage is large: each downloads when it is chosen (and after asking), not all now.
    const most = Math.max(...manifest.stages.map((s) => s.bytes || 0));
    el.weightsNote.textContent = `This folder's stages are large (up to ${(most / 1e6).toFixed(0)} MB each, over ` +
      `${LARGE_BYTES / 1e6} MB): each downloads when you choose it, after asking; every file is checked ` +
      'against the size and sha256 checksum that manifest.json gives for it.';
  } else {
    await allStagesLoaded();
  }
  if ('serviceWorker' in navigator && location.protocol !== 'file:') {
    navigator.serviceWorker.register('sw.js').then(() => navigator.serviceWorker.ready).then((reg) => {
      const page = location.href.split('?')[0];
      const loaded = performance.getEntriesByType('resource').map((e) => e.name)
        .filter((url) => url.startsWith(location.origin));
      // The worker answers on this channel once every URL is in its cache, so the page (and a test)
      // can say when a reload without network will work.
      const channel = new MessageChannel();
      channel.port1.onmessage = ({ data }) => {
        const state = $('offline-state');
        state.dataset.state = data.failed === 0 ? 'ready' : 'partial';
        state.textContent = data.failed === 0
          ? 'Saved for offline use.'
          : `Not saved for offline use: ${data.failed} of ${data.total} files could not be stored.`;
      };
      reg.active?.postMessage({ cache: [page, ...loaded] }, [channel.port2]);
    }).catch(() => {});
  }
}

main().catch((e) => fatal(e.message || String(e)));
