// Test 4: the page's controls (random, presets, stage + solve, the animation player and its keys,
// timeline, inspector, compare, accuracy, "test it here", projector, walkthrough chapters).
// Every test also checks for page errors (test 3).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  serverAndBrowser, pageUrl, readManifest, solveCli, waitForAnswer, armAnswer,
  assertSameAsCli, setText, position, controlWeights, TOKEN_KINDS, TIMEOUT, cliRight,
} from './harness.mjs';

const weights = controlWeights();
const manifest = readManifest(weights.dir);
const stageIds = manifest.stages.map((s) => s.id);
// The stage with the most fed-back thoughts: its timeline has thought tokens to look at.
const thoughtStage = [...manifest.stages].filter((s) => s.feeds_back).sort((x, y) => y.thoughts - x.thoughts)[0] ?? manifest.stages[0];
const A = 347;
const B = 285;

/** Tokens of a decoded sequence: special tokens, single digits, punctuation, words. */
function countTokens(text) {
  return (text.match(/<[^<>\s]+>|\d|[A-Za-z]+|[^\sA-Za-z\d]/g) ?? []).length;
}

let session;
let page;
const env = serverAndBrowser({ withPage: true, onReady: (e) => ({ session, page } = e) });

/** Loads the page solving A + B (or given params) and waits for the answer. */
async function load(params = {}) {
  const p = { a: A, b: B, stage: thoughtStage.id, animate: 0, weights: weights.param, ...params };
  await page.goto(pageUrl(env.srv.url, p));
  return waitForAnswer(page, p.a, p.b);
}

/** Polls `read` until it equals `expected` (up to 3 s: the page may update on the next frame), then asserts. */
async function eventually(read, expected, message) {
  const deadline = Date.now() + 3000;
  let value = await read();
  while (value !== expected && Date.now() < deadline) {
    await page.waitForTimeout(50);
    value = await read();
  }
  assert.equal(value, expected, message);
}

const pos = () => position(page);

async function tokens() {
  return page.$$eval('#timeline .tok', (els) =>
    els.map((e) => ({ kind: e.getAttribute('data-kind'), pos: e.getAttribute('data-pos'), text: e.textContent.trim() })),
  );
}

async function ariaPressed() {
  return page.getAttribute('#play', 'aria-pressed');
}

/** Sets a range input or select to its lowest ('min') or highest ('max') setting. */
async function setExtreme(selector, which) {
  const tag = await page.$eval(selector, (e) => e.tagName);
  if (tag === 'SELECT') {
    const values = await page.$$eval(`${selector} option`, (os) => os.map((o) => o.value));
    await page.selectOption(selector, which === 'min' ? values[0] : values[values.length - 1]);
  } else {
    const v = await page.$eval(selector, (e, which) => e.getAttribute(which) ?? (which === 'min' ? '0' : '100'), which);
    await page.fill(selector, v);
  }
}

/** Moves the selection to position `pos` by clicking its timeline token. */
// Loads the page and selects its middle position; resolves to the position count and it.
async function loadAtMiddle() {
  await load();
  const n = (await tokens()).length;
  const mid = Math.floor(n / 2);
  await selectToken(mid);
  return { n, mid };
}

async function selectToken(pos) {
  await page.click(`#timeline .tok[data-pos="${pos}"]`);
  await page.waitForFunction((pos) => document.querySelector('#position')?.getAttribute('data-pos') === String(pos), pos, {
    timeout: 5000,
  });
}

/** Takes the focus out of any text input (keys then go to the page). */
async function blur() {
  await page.evaluate(() => document.activeElement?.blur?.());
}

async function advanceDuring(ms) {
  const start = await position(page);
  await page.click('#play');
  await page.waitForTimeout(ms);
  const end = await position(page);
  if ((await ariaPressed()) === 'true') await page.click('#play');
  return end - start;
}

describe(`controls (${weights.label} weights, stage ${thoughtStage.id})`, () => {
  const cli = Object.fromEntries(stageIds.map((id) => [id, solveCli(weights.dir, id, [[A, B], [12, 34]])]));

  it('loads ready and solves the URL problem', async () => {
    const seen = await load();
    assertSameAsCli(seen, cli[thoughtStage.id].get(`${A} + ${B}`), A, B, 'load');
    session.assertClean();
  });

  it('#stage offers every stage of manifest.json', async () => {
    await load();
    const values = await page.$$eval('#stage option', (os) => os.map((o) => o.value));
    assert.deepEqual([...values].sort(), [...stageIds].sort(), '#stage option values');
    session.assertClean();
  });

  it('#random fills valid in-range operands from the held-out test set', async () => {
    await load();
    const heldOut = new Set(JSON.parse(await page.evaluate(() => window.coconut.testProblems(100000)))
      .map(([a, b]) => `${a}+${b}`));
    assert.ok(heldOut.size >= 100, `the held-out test set has ${heldOut.size} problems`);
    const pairs = new Set();
    for (let i = 0; i < 6; i++) {
      await page.click('#random');
      const a = await page.inputValue('#a');
      const b = await page.inputValue('#b');
      for (const v of [a, b]) {
        assert.match(v, /^(0|[1-9]\d*)$/, `#random wrote ${JSON.stringify(v)}`);
        assert.ok(v.length <= manifest.max_digits, `#random wrote ${v}: more than ${manifest.max_digits} digits`);
      }
      pairs.add(`${a}+${b}`);
      assert.ok(heldOut.has(`${a}+${b}`), `#random wrote ${a} + ${b}, not a held-out test problem`);
    }
    assert.ok(pairs.size >= 2, `six clicks of #random gave only ${[...pairs]}`);
    session.assertClean();
  });

  it('#preset fills #a and #b', async () => {
    await load();
    const values = (await page.$$eval('#preset option', (os) => os.map((o) => o.value))).filter((v) => v !== '');
    const problems = values.filter((v) => /^\d+\s*\+\s*\d+$/.test(v));
    assert.ok(problems.length >= 1, `#preset has no option like "9999+1": ${JSON.stringify(values)}`);
    for (const v of problems) {
      await page.selectOption('#preset', v);
      const [a, b] = v.split('+').map((s) => s.trim());
      assert.equal(await page.inputValue('#a'), a, `#preset ${v} -> #a`);
      assert.equal(await page.inputValue('#b'), b, `#preset ${v} -> #b`);
    }
    session.assertClean();
  });

  it('#stage change and #solve give coconut solve\'s answer for that stage', async () => {
    await load();
    for (const id of stageIds.filter((id) => id !== thoughtStage.id)) {
      await page.selectOption('#stage', id);
      await setText(page, '#a', 12);
      await setText(page, '#b', 34);
      await armAnswer(page);
      await page.click('#solve');
      const seen = await waitForAnswer(page, 12, 34, { armed: true });
      assertSameAsCli(seen, cli[id].get('12 + 34'), 12, 34, `stage ${id} via #stage + #solve`);
    }
    session.assertClean();
  });

  it('?engine=webgpu uses WebGPU and gives the same answer', async () => {
    const seen = await load({ engine: 'webgpu' });
    assertSameAsCli(seen, cli[thoughtStage.id].get(`${A} + ${B}`), A, B, '?engine=webgpu');
    assert.equal(seen.engine, 'webgpu', `#engine data-engine (text ${seen.engineText})`);
    session.assertClean();
  });

  it('#timeline has one .tok per token, with kinds and positions', async () => {
    const seen = await load();
    const toks = await tokens();
    const c = cli[thoughtStage.id].get(`${A} + ${B}`);
    assert.equal(toks.length, countTokens(seen.text), `.tok count vs tokens of ${JSON.stringify(seen.text)}`);
    toks.forEach((t, i) => {
      assert.equal(t.pos, String(i), `.tok #${i} data-pos`);
      assert.ok(TOKEN_KINDS.includes(t.kind), `.tok #${i} data-kind ${JSON.stringify(t.kind)} is not one of ${TOKEN_KINDS}`);
    });
    assert.equal(toks[0].kind, 'question', 'the first token is part of the question');
    assert.equal(toks.filter((t) => t.kind === 'thought').length, c.thoughts, 'thought tokens = coconut solve\'s thoughts');
    if (c.thoughts > 0) assert.equal(toks.filter((t) => t.kind === 'bot').length, 1, 'one <bot>');
    // With animate=0 the final state shows at once: the selection is at the last position.
    await eventually(pos, toks.length - 1, '#position data-pos right after an animate=0 load');
    session.assertClean();
  });

  it('step buttons, the scrub bar and timeline clicks move #position', async () => {
    const { n, mid } = await loadAtMiddle();
    assert.notEqual((await page.textContent('#position')).trim(), '', '#position shows the selected position');
    await page.click('#step-forward');
    await eventually(pos, mid + 1, '#step-forward');
    await eventually(async () => Number(await page.inputValue('#scrub')), mid + 1, '#scrub follows the selection');
    await page.click('#step-back');
    await page.click('#step-back');
    await eventually(pos, mid - 1, '#step-back twice');

    await page.fill('#scrub', '0');
    await eventually(pos, 0, '#scrub to 0');
    await page.click('#step-back');
    await eventually(pos, 0, '#step-back at the first position stays there');
    await setExtreme('#scrub', 'max');
    await eventually(pos, n - 1, '#scrub to its max is the last position');
    await page.click('#step-forward');
    await eventually(pos, n - 1, '#step-forward at the last position stays there');
    await page.fill('#scrub', String(mid));
    await eventually(pos, mid, `#scrub to ${mid}`);
    session.assertClean();
  });

  it('#play plays and pauses; #speed changes how fast', async (t) => {
    await load();
    await page.fill('#scrub', '0');
    await setExtreme('#speed', 'max');
    await page.click('#play');
    await eventually(ariaPressed, 'true', '#play aria-pressed while playing');
    await page.waitForFunction(() => Number(document.querySelector('#position')?.getAttribute('data-pos')) > 0, null, {
      timeout: 10_000,
    });
    if ((await ariaPressed()) === 'true') await page.click('#play');
    await eventually(ariaPressed, 'false', '#play aria-pressed after pausing');
    const paused = await position(page);
    await page.waitForTimeout(800);
    await eventually(pos, paused, 'the position stays put while paused');

    await page.fill('#scrub', '0');
    await setExtreme('#speed', 'min');
    const slow = await advanceDuring(1500);
    await page.fill('#scrub', '0');
    await setExtreme('#speed', 'max');
    const fast = await advanceDuring(1500);
    t.diagnostic(`positions advanced in 1.5 s: slowest speed ${slow}, fastest ${fast}`);
    assert.ok(fast > 0, 'playing at the fastest speed advances');
    assert.ok(fast >= slow, `the fastest #speed advanced ${fast} positions, the slowest ${slow}`);
    session.assertClean();
  });

  it('keyboard: Space toggles play, arrows step, not while typing', async () => {
    const { n, mid } = await loadAtMiddle();
    await blur();
    await page.keyboard.press('ArrowRight');
    await eventually(pos, mid + 1, 'ArrowRight');
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('ArrowLeft');
    await eventually(pos, mid - 1, 'ArrowLeft twice');
    await page.keyboard.press('Space');
    await eventually(ariaPressed, 'true', 'Space starts playing');
    await page.keyboard.press('Space');
    await eventually(ariaPressed, 'false', 'Space pauses');

    const before = await position(page);
    await page.focus('#a');
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('Space');
    await page.waitForTimeout(500);
    await eventually(pos, before, 'ArrowLeft in #a does not move the selection');
    await eventually(ariaPressed, 'false', 'Space in #a does not play');
    session.assertClean();
  });

  it('the inspector shows top-k, heat strip, similarity and one attention canvas per layer and head', async () => {
    await load();
    const toks = await tokens();
    const thought = toks.findIndex((t) => t.kind === 'thought');
    for (const pos of [0, thought >= 0 ? thought : 1, toks.length - 1]) {
      await selectToken(pos);
      const topk = (await page.textContent('#topk')).trim();
      assert.match(topk, /\d(\.\d+)?\s*%|0\.\d+|1\.0/, `#topk at ${pos} lists probabilities: ${JSON.stringify(topk.slice(0, 200))}`);
      assert.ok((await page.$$('#topk > *, #topk li, #topk tr')).length >= 1, `#topk at ${pos} has entries`);
      const heat = await page.$eval('#heat-strip', (e) => ({ tag: e.tagName, w: e.width, h: e.height }));
      assert.equal(heat.tag, 'CANVAS', '#heat-strip is a canvas');
      assert.ok(heat.w > 0 && heat.h > 0, `#heat-strip has a size (${heat.w}x${heat.h})`);
      assert.notEqual((await page.textContent('#similarity')).trim(), '', `#similarity at ${pos}`);
      const canvases = await page.$$('#attention canvas');
      assert.equal(canvases.length, manifest.model.n_layer * manifest.model.n_head, '#attention canvases = layers x heads');
    }
    session.assertClean();
  });

  it('#compare fills a row per stage with coconut solve\'s answers', async () => {
    await load();
    await page.click('#compare');
    await page.waitForSelector('#compare-table[data-state=done]', { timeout: TIMEOUT, state: 'attached' });
    for (const id of stageIds) {
      const cell = await page.$(`#compare-table tr[data-stage="${id}"] .answer`);
      assert.ok(cell, `#compare-table has a row tr[data-stage=${id}] with an .answer cell`);
      // The cell may add a verdict or "(none)"; its digits must be the model's answer.
      const shown = (await cell.textContent()).trim();
      assert.equal(shown.replace(/\D/g, ''), cli[id].get(`${A} + ${B}`).answer ?? '', `#compare-table answer for ${id} (cell text ${JSON.stringify(shown)})`);
    }
    session.assertClean();
  });

  it('#accuracy is built from manifest.json (a row for every stage)', async () => {
    await load();
    const acc = await page.$eval('#accuracy', (e) => ({
      text: e.textContent,
      stages: [...e.querySelectorAll('[data-stage]')].map((x) => x.getAttribute('data-stage')),
    }));
    for (const id of stageIds) {
      assert.ok(acc.stages.includes(id) || acc.text.includes(id), `#accuracy mentions stage ${id}: ${JSON.stringify(acc.text.slice(0, 300))}`);
    }
    session.assertClean();
  });

  it('"test it here" with n=5 finishes with data-n=5', async () => {
    await load();
    await page.fill('#test-n', '5');
    await page.click('#test-run');
    await page.waitForSelector('#test-result[data-state=done]', { timeout: TIMEOUT, state: 'attached' });
    const r = await page.$eval('#test-result', (e) => ({
      n: e.getAttribute('data-n'),
      correct: e.getAttribute('data-correct'),
      perSecond: e.getAttribute('data-per-second'),
      text: e.textContent.trim(),
    }));
    assert.equal(r.n, '5', '#test-result data-n');
    assert.match(r.correct ?? '', /^\d+$/, '#test-result data-correct is a count');
    assert.ok(Number(r.correct) <= 5, `#test-result data-correct ${r.correct} <= 5`);
    assert.ok(Number(r.perSecond) > 0 && Number.isFinite(Number(r.perSecond)), `#test-result data-per-second ${r.perSecond}`);
    assert.match(r.text, /of the first 5 held-out test problems/, '#test-result says what it ran');
    session.assertClean();
  });

  it('"test it here" on WebGPU: 100 problems in batches, as many right as coconut solve', async () => {
    await load({ engine: 'webgpu' });
    await page.selectOption('#stage', thoughtStage.id);
    await page.click('[data-test-n="100"]');
    await page.waitForSelector('#test-result[data-state=done]', { timeout: TIMEOUT, state: 'attached' });
    const r = await page.$eval('#test-result', (e) => ({
      n: e.getAttribute('data-n'), correct: e.getAttribute('data-correct'), text: e.textContent.trim(),
    }));
    const problems = JSON.parse(await page.evaluate(() => window.coconut.testProblems(100)));
    const cli = solveCli(weights.dir, thoughtStage.id, problems);
    const right = problems.filter(([a, b]) => cliRight(cli.get(`${a} + ${b}`), a, b)).length;
    assert.equal(r.n, '100', '#test-result data-n');
    assert.equal(Number(r.correct), right, `page ${r.correct} right, coconut solve ${right} (${r.text})`);
    assert.match(r.text, /on the WebGPU engine/, r.text);
    session.assertClean();
  });

  it('#projector toggles the projector class on <body>', async () => {
    await load();
    const has = () => page.evaluate(() => document.body.classList.contains('projector'));
    const initial = await has();
    await page.click('#projector');
    await eventually(has, !initial, 'first click');
    await page.click('#projector');
    await eventually(has, initial, 'second click');
    session.assertClean();
  });

  it('walkthrough chapters move with next and prev', async () => {
    await load();
    const read = () =>
      page.$eval('#chapter', (e) => ({ i: Number(e.getAttribute('data-chapter')), text: e.textContent.trim() }));
    const first = await read();
    assert.ok(Number.isInteger(first.i), `#chapter data-chapter ${first.i}`);
    assert.notEqual(first.text, '', '#chapter has text');
    await page.click('#chapter-next');
    await eventually(async () => (await read()).i, first.i + 1, '#chapter-next');
    const second = await read();
    assert.equal(second.i, first.i + 1, '#chapter-next');
    assert.notEqual(second.text, first.text, 'the next chapter has other text');
    await page.click('#chapter-prev');
    await eventually(async () => (await read()).i, first.i, '#chapter-prev');
    const back = await read();
    assert.equal(back.i, first.i, '#chapter-prev');
    assert.equal(back.text, first.text, '#chapter-prev shows the first chapter again');
    session.assertClean();
  });
});
