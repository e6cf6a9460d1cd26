// Test 6: what a class meets. The pause baseline drawn without thought loops; the page served
// from a subfolder, and a visible error when the engine cannot load; keys on a focused dropdown,
// Home/End, a focusable timeline; a refused input clears the last problem; the answer revealed
// with the animation; "test it here" stopped by a new solve; controls off until the model loads;
// the engine notice that stays; the projector view at 1280x720; the inspector's visible notes;
// examples the shipped stages get right; thought edits measured as the CLI measures them; and an
// axe-core audit (WCAG 2.2 AA: no serious or critical violation) on a laptop, a phone and a
// projector.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  DIST, openPage, pageUrl, readManifest, solveCli, interveneCli, measureCli, waitForAnswer, position,
  controlWeights, hasShippedWeights, TIMEOUT, serverAndBrowser, cliRight,
} from './harness.mjs';
import { startServer } from './serve.mjs';

const weights = controlWeights();
const manifest = readManifest(weights.dir);
const kindOf = (s) => (s.kind === 'pause' ? 'pause' : s.kind === 'no_cot' ? 'nocot' : 'latent');
const pauseStage = manifest.stages.find((s) => kindOf(s) === 'pause');
const allLatent = [...manifest.stages].filter((s) => kindOf(s) === 'latent').sort((x, y) => y.thoughts - x.thoughts)[0];
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

// The server and the browser of this file's tests, started before them.
const env = serverAndBrowser();

/** A fresh page (own context) loading `params` (animate=0 unless given) and its answer. */
async function open(params = {}, opts = {}) {
  const session = await openPage(env.browser, opts);
  const p = { a: 347, b: 285, animate: 0, weights: weights.param, ...params };
  await session.page.goto(pageUrl(opts.base ?? env.srv.url, p));
  const seen = await waitForAnswer(session.page, p.a, p.b);
  return { session, page: session.page, seen };
}

async function tokenKinds(page) {
  return page.$$eval('#timeline .tok', (els) => els.map((e) => e.dataset.kind));
}

describe(`the classroom page (${weights.label} weights)`, () => {
  it('draws the pause baseline as pause positions, with no loops; thoughts with one loop each', async () => {
    const pause = await open({ stage: pauseStage.id });
    const kinds = await tokenKinds(pause.page);
    // As many slots as `coconut solve` feeds (with coupled ids the count follows the columns).
    const slots = (stage) => solveCli(weights.dir, stage.id, [[347, 285]]).get('347 + 285').thoughts;
    assert.equal(kinds.filter((k) => k === 'pause').length, slots(pauseStage), `pause slots: ${kinds}`);
    assert.ok(!kinds.includes('thought'), `no continuous thought in the pause baseline: ${kinds}`);
    assert.equal(await pause.page.getAttribute('#stack', 'data-loops'), '0', 'no hidden-state loop is drawn');
    const label = await pause.page.getAttribute('#timeline .tok[data-kind="pause"]', 'aria-label');
    assert.match(label, /pause/, 'a pause slot is announced as a pause');
    pause.session.assertClean();
    await pause.session.close();

    const latent = await open({ stage: allLatent.id });
    const thoughts = (await tokenKinds(latent.page)).filter((k) => k === 'thought').length;
    assert.equal(thoughts, slots(allLatent));
    assert.equal(await latent.page.getAttribute('#stack', 'data-loops'), String(thoughts), 'one loop per thought');
    latent.session.assertClean();
    await latent.session.close();
  });

  it('works from a subfolder, and says so when the engine cannot load', async () => {
    const sub = await startServer({ root: os.tmpdir(), mounts: { '/demo': DIST } });
    try {
      const { session, page, seen } = await open({ engine: 'reference', weights: undefined }, { base: `${sub.url}demo/` });
      assert.equal(seen.state, 'done', `answer from /demo/: ${JSON.stringify(seen)}`);
      const styled = await page.$eval('#answer', (e) => getComputedStyle(e).fontWeight);
      assert.equal(styled, '700', 'the stylesheet loaded from the subfolder');
      session.assertClean();
      await session.close();
    } finally {
      await sub.close();
    }

    // The same page without its wasm file: a visible failure, not "Loading…" forever.
    const broken = fs.mkdtempSync(path.join(os.tmpdir(), 'coconut-nowasm-'));
    try {
      fs.cpSync(DIST, broken, { recursive: true, filter: (src) => !src.endsWith('.wasm') });
      const served = await startServer({ root: broken });
      try {
        const session = await openPage(env.browser);
        await session.page.goto(pageUrl(served.url, { a: 1, b: 2, animate: 0 }));
        await session.page.waitForSelector('#status[data-state=failed]', { timeout: TIMEOUT });
        const text = await session.page.textContent('#status');
        assert.match(text, /engine/i, `the failure names the engine: ${text}`);
        await session.close();
      } finally {
        await served.close();
      }
    } finally {
      fs.rmSync(broken, { recursive: true, force: true });
    }
  });

  it('steps with ← → on a focused stage dropdown, jumps with Home/End, and moves focus along the timeline', async () => {
    const { session, page } = await open({ stage: allLatent.id });
    const stage = await page.inputValue('#stage');
    const last = await position(page);
    await page.focus('#stage');
    await page.keyboard.press('ArrowLeft');
    assert.equal(await position(page), last - 1, 'ArrowLeft on the dropdown steps back');
    assert.equal(await page.inputValue('#stage'), stage, 'the stage did not change');
    await page.evaluate(() => document.activeElement.blur());
    await page.keyboard.press('Home');
    assert.equal(await position(page), 0, 'Home selects the first position');
    await page.keyboard.press('End');
    assert.equal(await position(page), last, 'End selects the last position');
    // One token is in the tab order (the selected one); arrows move the focus with the selection.
    const tabbable = await page.$$eval('#timeline .tok', (els) => els.filter((e) => e.tabIndex === 0).map((e) => e.dataset.pos));
    assert.deepEqual(tabbable, [String(last)], 'the selected token is the one tab stop');
    await page.focus(`#timeline .tok[data-pos="${last}"]`);
    await page.keyboard.press('ArrowLeft');
    const focused = await page.evaluate(() => document.activeElement?.dataset?.pos);
    assert.equal(focused, String(last - 1), 'the focus follows the selection');
    session.assertClean();
    await session.close();
  });

  it('clears the last problem when an input is refused', async () => {
    const { session, page } = await open({ stage: allLatent.id });
    await page.fill('#a', '12a');
    await page.click('#solve');
    await page.waitForSelector('#answer[data-state=error]', { state: 'attached' });
    assert.equal(await page.$$eval('#timeline .tok', (els) => els.length), 0, 'the timeline is empty');
    assert.equal((await page.textContent('#verdict')).trim(), '', 'no verdict');
    assert.equal(await page.getAttribute('#play', 'aria-pressed'), 'false', 'nothing plays');
    assert.equal(await page.getAttribute('#stack', 'data-loops'), '0', 'the stack is empty');
    assert.equal(await page.$$eval('#topk li', (els) => els.length), 0, 'the inspector is empty');
    session.assertClean();
    await session.close();
  });

  it('reveals the answer when the animation reaches it, with the accuracy for its size', async () => {
    const cli = solveCli(weights.dir, allLatent.id, [[347, 285]]).get('347 + 285');
    const session = await openPage(env.browser);
    const page = session.page;
    await page.goto(pageUrl(env.srv.url, { a: 347, b: 285, stage: allLatent.id, weights: weights.param }));
    await page.waitForSelector('#answer[data-state=playing]', { timeout: TIMEOUT });
    assert.equal((await page.textContent('#answer')).trim(), '…', 'no answer while the animation plays');
    const answerTokensShown = await page.$$eval('#timeline .tok[data-kind="answer"]', (els) => els.filter((e) => !e.classList.contains('pending')).length);
    assert.equal(answerTokensShown, 0, 'the answer digits are not shown ahead of the animation');
    const seen = await waitForAnswer(page, 347, 285);
    assert.equal(seen.answer, cli.answer ?? '');
    assert.equal(await position(page), (await page.$$('#timeline .tok')).length - 1, 'revealed at the end');
    if (hasShippedWeights() && weights.label === 'shipped') {
      assert.match(await page.textContent('#size-note'), /3-digit \+ 3-digit problems right \(n = \d+/);
    }
    session.assertClean();
    await session.close();
  });

  it('stops "test it here" when a new problem is solved', async () => {
    const { session, page } = await open({ stage: allLatent.id, engine: 'reference' });
    await page.fill('#test-n', '1000');
    await page.click('#test-run');
    await page.waitForSelector('#test-result[data-state=running]');
    assert.equal((await page.textContent('#test-run')).trim(), 'Stop');
    await page.fill('#a', '12');
    await page.click('#solve');
    await page.waitForSelector('#test-result[data-state=stopped]', { timeout: TIMEOUT });
    await waitForAnswer(page, 12, 285);
    assert.equal((await page.textContent('#test-run')).trim(), 'Run');
    session.assertClean();
    await session.close();
  });

  it('keeps the controls off until the model has loaded', async () => {
    const session = await openPage(env.browser);
    const page = session.page;
    let release;
    const held = new Promise((r) => (release = r));
    await page.route('**/manifest.json', async (route) => {
      await held;
      await route.continue();
    });
    await page.goto(pageUrl(env.srv.url, { weights: weights.param }), { waitUntil: 'domcontentloaded' });
    for (const id of ['solve', 'random', 'preset', 'stage', 'compare', 'test-run']) {
      assert.equal(await page.$eval(`#${id}`, (e) => e.disabled), true, `#${id} is disabled while loading`);
    }
    await page.click('#random', { force: true }).catch(() => {});
    release();
    await page.waitForSelector('#status[data-state=ready]', { timeout: TIMEOUT, state: 'attached' });
    assert.equal(await page.$eval('#random', (e) => e.disabled), false);
    session.assertClean();
    await session.close();
  });

  it('says which engine runs and why, and keeps saying it', async () => {
    // SwiftShader (what these machines have) is a CPU adapter: the reference engine is chosen.
    const soft = await open({ stage: allLatent.id });
    if (soft.seen.engine === 'reference') {
      assert.match(await soft.page.textContent('#engine-notice'), /software renderer/);
    }
    await soft.session.close();
    // No WebGPU at all: the notice stays after solving.
    const session = await openPage(env.browser);
    await session.page.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }));
    await session.page.goto(pageUrl(env.srv.url, { a: 12, b: 34, animate: 0, weights: weights.param }));
    await waitForAnswer(session.page, 12, 34);
    await session.page.click('#solve');
    await session.page.waitForTimeout(500);
    assert.equal(await session.page.isVisible('#engine-notice'), true, 'the no-WebGPU notice is still shown');
    assert.match(await session.page.textContent('#engine-notice'), /no WebGPU/);
    session.assertClean();
    await session.close();
  });

  it('fits the chapter controls, the player and the stack in one 1280x720 projector view, every chapter', async () => {
    const { session, page } = await open({ projector: 1, chapter: 0, engine: 'reference' }, { viewport: { width: 1280, height: 720 } });
    const chapters = Number((await page.textContent('#chapter-title')).match(/\/(\d+)/)[1]);
    for (let i = 0; i < chapters; i++) {
      if (i > 0) {
        await page.click('#chapter-next');
        await page.waitForSelector('#answer[data-state=done]', { timeout: TIMEOUT });
      }
      await page.evaluate(() => window.scrollTo(0, 0));
      for (const sel of ['#chapter-prev', '#chapter-next', '#play', '#scrub', '#stack', '#answer']) {
        const box = await page.$eval(sel, (e) => {
          const r = e.getBoundingClientRect();
          return { top: r.top, bottom: r.bottom };
        });
        assert.ok(box.top >= 0 && box.bottom <= 720, `chapter ${i + 1}: ${sel} spans ${box.top}-${box.bottom} px of 720`);
      }
    }
    session.assertClean();
    await session.close();
  });

  it('explains a thought in the inspector on the page, and selects a position by clicking the stack', async () => {
    const { session, page } = await open({ stage: allLatent.id });
    await page.click('#timeline .tok[data-kind="bot"]');
    assert.match(await page.textContent('#topk-note'), /fed back as the next thought/);
    assert.notEqual((await page.textContent('#similarity-note')).trim(), '');
    const box = await page.$eval('#stack', (e) => {
      const r = e.getBoundingClientRect();
      return { left: r.left, right: r.right, top: r.top, height: r.height };
    });
    await page.mouse.click(box.right - 3, box.top + box.height / 2);
    const last = (await page.$$('#timeline .tok')).length - 2; // the last position that ran
    assert.equal(await position(page), last, 'clicking the last column selects it');
    session.assertClean();
    await session.close();
  });

  it('shows what the linear probes read from every thought, with their held-out scores (shipped weights)', { skip: !hasShippedWeights() && 'no shipped weights in the build' }, async () => {
    const dir = path.join(DIST, 'weights');
    const shipped = readManifest(dir);
    for (const s of shipped.stages.filter((x) => x.feeds_back && x.thoughts > 0)) {
      assert.ok(s.probes, `${s.id} ships the probes of its thoughts`);
    }
    // The scores `coconut probe` wrote when the weights were shipped (every quantity, every slot).
    const scores = JSON.parse(fs.readFileSync(path.join(dir, 'eval', 'probes.json'), 'utf8'));
    const stage = [...shipped.stages].filter((x) => x.feeds_back).sort((x, y) => y.thoughts - x.thoughts)[0];
    const [a, b] = [347, 285];
    const { session, page } = await open({ stage: stage.id, a, b });
    // The true quantities of the problem's columns, for the probes that were never wrong.
    const truth = (column, quantity) => {
      let carry = 0;
      for (let i = 0; i < column; i++) carry = Math.floor((Math.floor(a / 10 ** i) % 10 + Math.floor(b / 10 ** i) % 10 + carry) / 10);
      const sum = Math.floor(a / 10 ** column) % 10 + Math.floor(b / 10 ** column) % 10 + carry;
      return quantity === 'digit' ? sum % 10 : Math.floor(sum / 10);
    };
    const thoughts = await page.$$('#timeline .tok[data-kind="thought"]');
    assert.equal(thoughts.length, solveCli(dir, stage.id, [[a, b]]).get(`${a} + ${b}`).thoughts);
    for (const [slot, token] of thoughts.entries()) {
      await token.click();
      assert.equal(await page.isVisible('#probes-box'), true, `thought ${slot} shows the probes`);
      const rows = await page.$$eval('#probes tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')]
        .map((td) => ({ value: Number(td.dataset.value), text: td.textContent }))));
      assert.equal(rows.length, shipped.max_digits, `one row per column at thought ${slot}`);
      rows.forEach((cells, column) => {
        ['digit', 'carry'].forEach((quantity, i) => {
          const score = scores.find((x) => x.stage === stage.id && x.slot === slot && x.column === column && x.quantity === quantity);
          assert.ok(score, `a score for ${stage.id} thought ${slot} column ${column} ${quantity}`);
          assert.ok(cells[i].text.endsWith(` ${score.accuracy.toFixed(0)}%`), `thought ${slot} column ${column} ${quantity}: ${cells[i].text} shows ${score.accuracy}`);
          if (score.accuracy === 100) assert.equal(cells[i].value, truth(column, quantity), `a probe right on every held-out problem reads ${quantity} of column ${column} at thought ${slot}`);
        });
      });
    }
    // A written position holds no thought: no probe table.
    await page.click('#timeline .tok[data-kind="bot"]');
    assert.equal(await page.isVisible('#probes-box'), false);
    session.assertClean();
    await session.close();
  });

  it('edits a thought as `coconut intervene` does, from the inspector and the address, and refuses bad edits with a reason (shipped weights)', { skip: !hasShippedWeights() && 'no shipped weights in the build' }, async () => {
    const dir = path.join(DIST, 'weights');
    const stage = [...readManifest(dir).stages].filter((x) => x.feeds_back).sort((x, y) => y.thoughts - x.thoughts)[0];
    const [a, b] = [347, 285];
    const { session, page } = await open({ stage: stage.id, a, b });
    const result = async () => page.$eval('#edit-result', (e) => ({ ...e.dataset }));
    const same = async (patches) => {
      await page.waitForSelector('#edit-result[data-state=done]', { state: 'attached' });
      const seen = await result();
      const cli = interveneCli(dir, stage.id, patches, a, b);
      assert.equal(seen.answer, cli.edited_answer ?? '', `${patches}: the page's edited answer is the CLI's`);
      assert.equal(seen.text, cli.edited_text, `${patches}: the page's edited sequence is the CLI's`);
      assert.match(await page.textContent('#edit-result'), new RegExp(`as trained ${cli.answer} `));
      assert.equal(new URL(page.url()).searchParams.get('patch'), patches.join(';'), 'the address holds the edit');
    };
    const thoughts = await page.$$('#timeline .tok[data-kind="thought"]');
    await page.click('#timeline .tok[data-kind="bot"]');
    assert.equal(await page.isVisible('#edit-box'), false, 'no edit at a written position');
    await thoughts[0].click();
    assert.equal(await page.isVisible('#edit-box'), true);
    await page.fill('#edit-from', '999+1');
    await page.click('#edit-replace');
    await same(['0=from:999+1']);
    await thoughts[1].click();
    await page.click('#edit-zero');
    await same(['1=zero']);
    await page.selectOption('#edit-column', '1');
    await page.click('#edit-flip');
    await same(['1=flip:1']);
    // Beside it, what the answer would be had it followed the flipped carry its probe read.
    const probe = (await page.$$eval('#probes tbody tr', (trs) => trs.map((tr) => tr.querySelectorAll('td')[1].dataset.value)))[1];
    const moved = a + b + (probe === '1' ? -100 : 100);
    assert.equal((await result()).predicted, String(moved));
    assert.match(await page.textContent('#edit-result'), new RegExp(`would be ${moved}\\.`));
    // Refused with a reason, nothing else changes.
    const answer = await page.textContent('#answer');
    for (const [from, reason] of [['12345+1', /12345/], ['', /0=from:|number/i], ['1+', /number/i]]) {
      await thoughts[0].click();
      await page.fill('#edit-from', from);
      await page.click('#edit-replace');
      await page.waitForSelector('#edit-result[data-state=error]', { state: 'attached' });
      assert.match(await page.textContent('#edit-result'), reason, `replacing by "${from}"`);
    }
    assert.equal(await page.textContent('#answer'), answer, 'a refused edit leaves the answer as it was');
    session.assertClean();
    await session.close();
    // From the address: a shared link shows the edit, and an impossible one says why.
    const linked = await open({ stage: stage.id, a, b, patch: '0=zero' });
    await linked.page.waitForSelector('#edit-result[data-state=done]', { state: 'attached' });
    const cli = interveneCli(dir, stage.id, ['0=zero'], a, b);
    assert.equal((await linked.page.$eval('#edit-result', (e) => e.dataset.text)), cli.edited_text);
    linked.session.assertClean();
    await linked.session.close();
    const fed = solveCli(dir, stage.id, [[a, b]]).get(`${a} + ${b}`).thoughts;
    const impossible = await open({ stage: stage.id, a, b, patch: `${fed}=zero` });
    await impossible.page.waitForSelector('#edit-result[data-state=error]', { state: 'attached' });
    assert.match(await impossible.page.textContent('#edit-result'), new RegExp(`has ${fed}`));
    impossible.session.assertClean();
    await impossible.session.close();
  });

  it('measures what editing the thoughts does with the command line\'s numbers, and refuses what it cannot measure (shipped weights)', { skip: !hasShippedWeights() && 'no shipped weights in the build' }, async () => {
    const dir = path.join(DIST, 'weights');
    const latent = [...readManifest(dir).stages].filter((x) => x.feeds_back && x.thoughts > 0).sort((x, y) => y.thoughts - x.thoughts);
    const { session, page } = await open({ stage: latent[0].id });
    const measure = async (stage, kind, n) => {
      await page.selectOption('#stage', stage);
      await page.selectOption('#measure-kind', kind);
      await page.fill('#measure-n', String(n));
      await page.click('#measure-run');
      await page.waitForSelector('#measure-result[data-state=done], #measure-result[data-state=error]', { state: 'attached' });
      return page.$eval('#measure-result', (e) => ({ ...e.dataset, text: e.textContent }));
    };
    for (const [stage, kind, n] of [[latent[0].id, 'patching', 12], [latent.at(-1).id, 'flips', 8]]) {
      const seen = await measure(stage, kind, n);
      assert.equal(seen.state, 'done', seen.text);
      assert.deepEqual(JSON.parse(seen.json), measureCli(dir, stage, kind, n), `${kind} on ${stage}: the page's rows are the CLI's`);
      const rows = await page.$$eval('#measure-table tbody tr', (trs) => trs.length);
      assert.equal(rows, JSON.parse(seen.json).length, 'one table row per effect');
    }
    const pause = readManifest(dir).stages.find((x) => !x.feeds_back && x.thoughts > 0);
    if (pause) {
      const refused = await measure(pause.id, 'patching', 5);
      assert.equal(refused.state, 'error');
      assert.match(refused.text, /no thought/);
    }
    session.assertClean();
    await session.close();
  });

  it('offers examples and chapters that the shipped stages answer right', { skip: !hasShippedWeights() && 'no shipped weights in the build' }, async () => {
    const { session, page } = await open({ weights: undefined, engine: 'reference' });
    const shipped = readManifest(path.join(DIST, 'weights'));
    const options = await page.$$eval('#preset option', (els) => els.filter((e) => e.value).map((e) => ({ value: e.value, text: e.textContent })));
    const chapters = await page.evaluate(async () => {
      const { chapters } = await import('./js/walkthrough.js');
      const manifest = await (await fetch('weights/manifest.json')).json();
      return chapters(manifest).filter((c) => c.stage).map((c) => ({ stage: c.stage, problem: c.problem, failure: Boolean(c.failure) }));
    });
    // A stage-specific example also picks its stage.
    for (const o of options.filter((x) => x.value.includes('@'))) {
      const [problem, stage] = o.value.split('@');
      await page.selectOption('#preset', o.value);
      assert.equal(await page.inputValue('#stage'), stage, `${o.value} selects ${stage}`);
      assert.equal(`${await page.inputValue('#a')}+${await page.inputValue('#b')}`, problem);
    }
    session.assertClean();
    await session.close();
    const wrong = [];
    // "a+b" is for every stage; "a+b@stage" is about that stage: the labelled failure.
    const general = options.filter((o) => !o.value.includes('@'));
    const problems = general.map((o) => o.value.split('+').map(Number));
    for (const s of shipped.stages) {
      const cli = solveCli(path.join(DIST, 'weights'), s.id, problems);
      for (const [a, b] of problems) {
        const line = cli.get(`${a} + ${b}`);
        if (!cliRight(line, a, b)) wrong.push(`${s.id}: ${a}+${b} -> ${line.answer}`);
      }
    }
    for (const c of chapters) {
      const [a, b] = c.problem.map(Number);
      const line = solveCli(path.join(DIST, 'weights'), c.stage, [[a, b]]).get(`${a} + ${b}`);
      // A chapter about a failure must show one; every other chapter a right answer.
      if (cliRight(line, a, b) === c.failure) {
        wrong.push(`chapter on ${c.stage}${c.failure ? ' (labelled a failure)' : ''}: ${a}+${b} -> ${line.answer}`);
      }
    }
    assert.deepEqual(wrong, [], 'every example and chapter problem is answered right (the labelled failures wrong)');
    // A stage-specific example is labelled a failure and does fail on its stage.
    for (const o of options.filter((x) => x.value.includes('@'))) {
      const [problem, stage] = o.value.split('@');
      const [a, b] = problem.split('+').map(Number);
      assert.match(o.text, /failure.*wrong/, `${o.value} is labelled as a failure`);
      const line = solveCli(path.join(DIST, 'weights'), stage, [[a, b]]).get(`${a} + ${b}`);
      assert.ok(!cliRight(line, a, b), `${o.text}: ${stage} answers ${line.answer}`);
    }
  });

  for (const view of [
    { label: 'laptop', viewport: { width: 1280, height: 800 }, params: {} },
    { label: 'phone', viewport: { width: 390, height: 844 }, params: {} },
    { label: 'projector', viewport: { width: 1280, height: 720 }, params: { projector: 1 } },
  ]) {
    it(`has no serious or critical axe-core violation (WCAG 2.2 AA) on a ${view.label}`, async () => {
      const { session, page } = await open({ stage: allLatent.id, ...view.params }, { viewport: view.viewport });
      await page.click('#timeline .tok[data-kind="thought"]');
      await page.addScriptTag({ path: AXE });
      const result = await page.evaluate(() =>
        window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] } }));
      const bad = result.violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
      assert.deepEqual(bad, [], 'axe-core violations');
      session.assertClean();
      await session.close();
    });
  }
});
