// The page: waits for the wasm app, loads the weights, picks the engine, and wires the controls.
// URL parameters (also the contract for automated tests): a, b, stage, animate=0, weights=<folder
// URL>, engine=webgpu|reference, projector=1, chapter=N. With a and b the page solves on load.

import { loadWeights } from './loader.js';
import { Player } from './player.js';
import { renderInspector } from './inspector.js';
import { chapters } from './walkthrough.js';
import { renderAccuracy, stageLabel, stageAbout } from './panels.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const el = {
  a: $('a'), b: $('b'), stage: $('stage'), solve: $('solve'), random: $('random'), preset: $('preset'),
  form: $('problem-form'), error: $('error'), aError: $('a-error'), bError: $('b-error'),
  answer: $('answer'), verdict: $('verdict'), engine: $('engine'), notice: $('engine-notice'),
  status: $('status'), progress: $('progress'), fatal: $('fatal'), stageAbout: $('stage-about'),
  compare: $('compare'), compareTable: $('compare-table'), accuracy: $('accuracy'),
  accuracyNote: $('accuracy-note'), testN: $('test-n'), testRun: $('test-run'), testResult: $('test-result'),
  projector: $('projector'), chapter: $('chapter'), chapterTitle: $('chapter-title'),
  chapterPrev: $('chapter-prev'), chapterNext: $('chapter-next'),
};

let app = null;
let manifest = null;
let lastView = null;
let chapterList = [];
let chapterIndex = 0;
// One model call at a time: the engine holds one generation at a time.
let queue = Promise.resolve();
const exclusive = (job) => (queue = queue.then(job, job));

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

function waitForApp() {
  if (window.coconut) return Promise.resolve(window.coconut);
  return new Promise((resolve) => window.addEventListener('coconut-ready', () => resolve(window.coconut), { once: true }));
}

const player = new Player(
  {
    timeline: $('timeline'), play: $('play'), stepBack: $('step-back'), stepForward: $('step-forward'),
    scrub: $('scrub'), speed: $('speed'), position: $('position'), stack: $('stack'),
  },
  (pos) => {
    if (lastView && lastView.positions.length > 0) {
      renderInspector(
        { title: $('inspector-title'), width: $('width'), heatStrip: $('heat-strip'), topk: $('topk'),
          similarity: $('similarity'), attention: $('attention') },
        lastView, pos);
    }
  },
);

function showEngine() {
  const webgpu = app.backend === 'webgpu';
  el.engine.dataset.engine = app.backend;
  el.engine.textContent = webgpu ? `Engine: WebGPU (our WGSL kernels)` : 'Engine: reference (Rust compiled to wasm, CPU)';
  el.engine.title = el.engine.dataset.adapter || '';
  const notice = app.notice;
  el.notice.hidden = !notice;
  el.notice.textContent = notice ? `Running on the reference engine: ${notice}` : '';
}

async function chooseEngine() {
  const wanted = params.get('engine');
  if (wanted === 'reference') {
    app.useReference();
  } else if (navigator.gpu) {
    try {
      el.engine.dataset.adapter = await app.useWebGpu();
    } catch {
      // app.notice says why; the reference engine is selected.
    }
  } else {
    app.useReference();
    showEngine();
    el.notice.hidden = false;
    el.notice.textContent = 'This browser has no WebGPU, so the model runs on the reference engine ' +
      '(Rust compiled to wasm, on the CPU): the same answers, more slowly.';
    return;
  }
  showEngine();
}

function showStageAbout() {
  el.stageAbout.textContent = stageAbout(manifest.stages.find((s) => s.id === el.stage.value), manifest);
}

function setFieldErrors(errors) {
  el.aError.textContent = errors.a || '';
  el.bError.textContent = errors.b || '';
  el.a.setAttribute('aria-invalid', String(Boolean(errors.a)));
  el.b.setAttribute('aria-invalid', String(Boolean(errors.b)));
}

function refuse(message) {
  el.error.textContent = message;
  el.answer.dataset.state = 'error';
  el.answer.textContent = '';
  el.answer.dataset.text = '';
  el.answer.dataset.correct = '';
  el.verdict.textContent = '';
}

// The address always reproduces what is on screen, so that it can be shared.
function updateUrl() {
  const url = new URL(location.href);
  url.searchParams.set('a', el.a.value.trim());
  url.searchParams.set('b', el.b.value.trim());
  url.searchParams.set('stage', el.stage.value);
  url.searchParams.set('chapter', String(chapterIndex));
  if (document.body.classList.contains('projector')) url.searchParams.set('projector', '1');
  else url.searchParams.delete('projector');
  history.replaceState(null, '', url);
}

function solve(animate = true) {
  return exclusive(async () => {
    if (!app || !manifest) return;
    const [a, b, stage] = [el.a.value, el.b.value, el.stage.value];
    const errors = JSON.parse(app.check(a, b));
    setFieldErrors(errors);
    if (errors.a || errors.b) {
      refuse([errors.a && `First number: ${errors.a}`, errors.b && `Second number: ${errors.b}`].filter(Boolean).join(' '));
      return;
    }
    el.error.textContent = '';
    el.answer.dataset.state = 'running';
    el.answer.textContent = '…';
    updateUrl();
    try {
      const view = JSON.parse(await app.solve(a, b, stage, true));
      lastView = view;
      el.answer.textContent = view.answer ?? '';
      el.answer.dataset.text = view.text;
      el.answer.dataset.correct = String(view.correct);
      el.verdict.textContent = view.correct ? `✓ correct (${view.a} + ${view.b} = ${view.expected})` : `✗ wrong: ${view.a} + ${view.b} = ${view.expected}`;
      el.verdict.className = view.correct ? 'right' : 'wrong';
      el.answer.dataset.state = 'done';
      player.show(view, animate);
    } catch (e) {
      refuse(e.message || String(e));
    }
    showEngine();
  });
}

function randomOperand(maxDigits) {
  const digits = 1 + Math.floor(Math.random() * maxDigits);
  const low = digits === 1 ? 0 : 10 ** (digits - 1);
  return String(low + Math.floor(Math.random() * (10 ** digits - low)));
}

function compareStages() {
  return exclusive(async () => {
    const [a, b] = [el.a.value, el.b.value];
    const body = el.compareTable.tBodies[0];
    body.replaceChildren();
    el.compareTable.dataset.state = 'running';
    const errors = JSON.parse(app.check(a, b));
    if (errors.a || errors.b) {
      setFieldErrors(errors);
      refuse('Fix the numbers above to compare the stages.');
      el.compareTable.dataset.state = 'error';
      return;
    }
    for (const s of manifest.stages) {
      const row = body.insertRow();
      row.dataset.stage = s.id;
      row.insertCell().textContent = stageLabel(s, manifest);
      row.insertCell().textContent = String(s.thoughts);
      const seq = row.insertCell();
      seq.className = 'seq';
      const answer = row.insertCell();
      answer.className = 'answer';
      try {
        const view = JSON.parse(await app.solve(a, b, s.id, false));
        seq.textContent = view.text.replace(/^.*?<bot>\s*/, '');
        answer.textContent = `${view.answer ?? '(none)'} ${view.correct ? '✓' : '✗'}`;
        row.classList.add(view.correct ? 'right' : 'wrong');
      } catch (e) {
        answer.textContent = e.message;
      }
    }
    el.compareTable.dataset.state = 'done';
    showEngine();
  });
}

function testHere() {
  return exclusive(async () => {
    const n = Math.round(Number(el.testN.value));
    if (!Number.isFinite(n) || n < 1 || n > 1000) {
      el.testResult.dataset.state = 'error';
      el.testResult.textContent = 'Choose between 1 and 1000 problems.';
      return;
    }
    const stage = el.stage.value;
    el.testResult.dataset.state = 'running';
    let correct = 0;
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      const a = randomOperand(manifest.max_digits);
      const b = randomOperand(manifest.max_digits);
      const view = JSON.parse(await app.solve(a, b, stage, false));
      if (view.correct) correct++;
      if (i % 5 === 4) {
        el.testResult.textContent = `${i + 1} of ${n}: ${correct} correct…`;
        await new Promise((r) => setTimeout(r, 0));
      }
    }
    const seconds = (performance.now() - start) / 1000;
    const rate = n / seconds;
    Object.assign(el.testResult.dataset, { state: 'done', n: String(n), correct: String(correct), perSecond: rate.toFixed(2) });
    el.testResult.textContent = `${correct} of ${n} correct (${((100 * correct) / n).toFixed(1)}%) on ${stage}, ` +
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
    el.a.value = randomOperand(manifest.max_digits);
    el.b.value = randomOperand(manifest.max_digits);
    solve(true);
  });
  el.preset.addEventListener('change', () => {
    const [a, b] = el.preset.value.split('+');
    if (a === undefined || b === undefined) return;
    el.a.value = a;
    el.b.value = b;
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
      setFieldErrors(JSON.parse(app.check(el.a.value || '0', el.b.value || '0')));
    });
  }
  el.compare.addEventListener('click', compareStages);
  el.testRun.addEventListener('click', testHere);
  el.projector.addEventListener('click', () => setProjector(!document.body.classList.contains('projector')));
  el.chapterPrev.addEventListener('click', () => showChapter(chapterIndex - 1));
  el.chapterNext.addEventListener('click', () => showChapter(chapterIndex + 1));
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (t instanceof HTMLInputElement && t.type !== 'range') return;
    if (t instanceof HTMLSelectElement || t instanceof HTMLTextAreaElement) return;
    if (e.key === ' ' && !(t instanceof HTMLButtonElement)) {
      e.preventDefault();
      player.toggle();
    } else if (e.key === 'ArrowRight' && t.type !== 'range') {
      e.preventDefault();
      player.step(1);
    } else if (e.key === 'ArrowLeft' && t.type !== 'range') {
      e.preventDefault();
      player.step(-1);
    }
  });
}

async function main() {
  if (params.get('projector') === '1') setProjector(true);
  wire();
  app = await waitForApp();
  let base = params.get('weights') || 'weights/';
  if (!base.endsWith('/')) base += '/';
  try {
    manifest = await loadWeights(app, base, (fraction, text) => {
      if (el.status.dataset.state !== 'loading') return;
      el.progress.value = fraction;
      el.status.textContent = text;
    });
  } catch (e) {
    el.status.dataset.state = 'failed';
    el.status.textContent = `Could not load the model: ${e.message || e}`;
    el.progress.hidden = true;
    return;
  }
  for (const s of manifest.stages) {
    const option = document.createElement('option');
    option.value = s.id;
    option.textContent = stageLabel(s, manifest);
    el.stage.append(option);
  }
  const latent = manifest.stages.filter((s) => /^stage\d+$/.test(s.id))
    .sort((x, y) => Number(x.id.slice(5)) - Number(y.id.slice(5)));
  const wantedStage = params.get('stage');
  el.stage.value = manifest.stages.some((s) => s.id === wantedStage) ? wantedStage : (latent.at(-1) || manifest.stages[0]).id;
  showStageAbout();
  renderAccuracy(el.accuracy, el.accuracyNote, manifest);
  await chooseEngine();
  el.status.dataset.state = 'ready';
  el.progress.hidden = true;
  for (const b of [el.solve, el.compare, el.testRun]) b.disabled = false;
  chapterList = chapters(manifest);
  const chapter = Number(params.get('chapter'));
  if (params.has('a') && params.has('b')) {
    el.a.value = params.get('a');
    el.b.value = params.get('b');
    showChapter(Number.isInteger(chapter) ? chapter : 0, false);
    await solve(params.get('animate') !== '0');
  } else {
    showChapter(Number.isInteger(chapter) ? chapter : 0, params.has('chapter'));
    if (!params.has('chapter')) await solve(params.get('animate') !== '0');
  }
  if ('serviceWorker' in navigator && location.protocol !== 'file:') {
    navigator.serviceWorker.register('sw.js').then(() => navigator.serviceWorker.ready).then((reg) => {
      const page = location.href.split('?')[0];
      const loaded = performance.getEntriesByType('resource').map((e) => e.name)
        .filter((url) => url.startsWith(location.origin));
      reg.active?.postMessage({ cache: [page, ...loaded] });
    }).catch(() => {});
  }
}

main().catch((e) => fatal(e.message || String(e)));
