// Test 7: the page tells the truth about every problem it accepts (issue 35). Beside an answer,
// the figure of the problem's own length pair (core's lookup, compared with `coconut solve`'s);
// one answer rule everywhere (core's, leading zeros explained once); edit results where the user
// is looking, edit controls only where `coconut intervene` edits, the probes' scores only for the
// lengths they were scored on, what the measured carry flips did beside the flip button; a
// projector view that scales its type and fits 1280x720 with an engine notice; a first visit with
// the answer at once and the animation one click away, plain words first; addresses read as typed,
// commands a shell reads; and the small things a class notices.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  DIST, COCONUT, openPage, pageUrl, typedUrl, pageParams, readManifest, solveCli, interveneCli, waitForAnswer,
  hasShippedWeights, answerMatches, answerWidth, cliRight, serverAndBrowser, TIMEOUT, FIXTURE_MOUNT,
} from './harness.mjs';

const shipped = hasShippedWeights();
const skip = !shipped && 'no shipped weights in the build';
const DIR = path.join(DIST, 'weights');
const manifest = shipped ? readManifest(DIR) : null;
const latent = shipped ? manifest.stages.filter((s) => s.feeds_back && s.thoughts > 0).sort((x, y) => y.thoughts - x.thoughts) : [];
const allLatent = latent[0];

const env = serverAndBrowser();

/** A fresh page at `params` (animate=0 unless given; the shipped weights) and, with a and b, its answer. */
async function open(params = {}, opts = {}) {
  const session = await openPage(env.browser, opts);
  if (opts.noWebGpu) {
    await session.page.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }));
  }
  const p = { animate: 0, ...params };
  await session.page.goto(opts.typed ? typedUrl(env.srv.url, opts.typed) : pageUrl(env.srv.url, p));
  const seen = p.a !== undefined && !opts.typed ? await waitForAnswer(session.page, p.a, p.b) : null;
  return { session, page: session.page, seen };
}

/** The rectangle of `selector` and the viewport's height. */
async function box(page, selector) {
  return page.$eval(selector, (e) => {
    const r = e.getBoundingClientRect();
    return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: window.innerHeight, width: window.innerWidth };
  });
}

describe('the page tells the truth about every problem it accepts (shipped weights)', { skip }, () => {
  it('1: beside each answer, the measured figure of its own length pair, or "not measured"', async () => {
    const problems = [[654122, 299], [1234567, 89], [12345678, 9], [347, 285], [314159, 271828]];
    const cli = solveCli(DIR, allLatent.id, problems);
    const { session, page } = await open({ a: 1, b: 2, stage: allLatent.id });
    for (const [a, b] of problems) {
      await page.goto(pageUrl(env.srv.url, { a, b, stage: allLatent.id, animate: 0 }));
      await waitForAnswer(page, a, b);
      const m = cli.get(`${a} + ${b}`).measured;
      assert.ok(m, `coconut solve has a figure for ${a} + ${b}`);
      const note = await page.textContent('#size-note');
      const [da, db] = [String(a).length, String(b).length];
      assert.equal(m.a_digits, da);
      assert.ok(note.includes(`${m.greedy.toFixed(1)}% of ${da}-digit + ${db}-digit problems right (n = ${m.n},`),
        `${a} + ${b}: ${note} (coconut solve: ${JSON.stringify(m)})`);
    }
    // Every stage's row of the comparison: the same lookup for that stage.
    await page.goto(pageUrl(env.srv.url, { a: 654122, b: 299, stage: allLatent.id, animate: 0 }));
    await waitForAnswer(page, 654122, 299);
    await page.click('#compare');
    await page.waitForSelector('#compare-table[data-state=done]', { state: 'attached', timeout: TIMEOUT });
    for (const s of manifest.stages) {
      const m = solveCli(DIR, s.id, [[654122, 299]]).get('654122 + 299').measured;
      const cell = (await page.textContent(`#compare-table tr[data-stage="${s.id}"] td:nth-child(5)`)).trim();
      assert.equal(cell, m ? `${m.greedy.toFixed(1)}% (n = ${m.n})` : 'not measured for this kind of problem', s.id);
    }
    session.assertClean();
    await session.close();
    // Weights whose manifest measured nothing for the pair say so.
    const fixture = await open({ a: 347, b: 285, weights: `${FIXTURE_MOUNT.slice(1)}/` });
    assert.match(await fixture.page.textContent('#size-note'), /^Not measured for this kind of problem/);
    fixture.session.assertClean();
    await fixture.session.close();
  });

  it('2 and 7: core\'s answer rule everywhere, edit results included; leading zeros explained once, beside the answer', async () => {
    const [a, b] = [347, 285];
    const cli = interveneCli(DIR, allLatent.id, ['0=flip:0'], a, b);
    assert.ok(cli.answer.startsWith('0'), `the all-latent stage writes ${cli.answer}`);
    const { session, page } = await open({ a, b, stage: allLatent.id, patch: '0=flip:0' });
    await page.waitForSelector('#edit-result[data-state=done]', { state: 'attached' });
    const text = await page.textContent('#edit-result');
    const width = answerWidth(cli.text);
    const mark = (answer) => (answerMatches(answer, a, b, width) ? '✓' : '✗');
    assert.ok(text.includes(`as trained ${cli.answer} ${mark(cli.answer)}`), text);
    assert.ok(text.includes(`answers ${cli.edited_answer ?? '(nothing)'} ${mark(cli.edited_answer)}`), text);
    assert.equal(await page.getAttribute('#edit-result', 'data-correct'), String(answerMatches(cli.edited_answer, a, b, width)));
    assert.equal(await page.getAttribute('#answer', 'data-correct'), 'true');
    const reads = String(a + b);
    const note = await page.textContent('#answer-note');
    assert.ok(note.startsWith(`${cli.answer} is ${reads}:`), note);
    const said = await page.evaluate((s) => document.body.innerText.split(s).length - 1, `${cli.answer} is ${reads}:`);
    assert.equal(said, 1, 'the leading zero is explained once');
    // Every stage's row of the comparison marks its answer by the same rule.
    await page.click('#compare');
    await page.waitForSelector('#compare-table[data-state=done]', { state: 'attached', timeout: TIMEOUT });
    for (const s of manifest.stages) {
      const answer = solveCli(DIR, s.id, [[a, b]]).get(`${a} + ${b}`).answer;
      const cell = (await page.textContent(`#compare-table tr[data-stage="${s.id}"] .answer`)).trim();
      assert.equal(cell, `${answer ?? '(none)'} ${mark(answer)}`, s.id);
    }
    session.assertClean();
    await session.close();
    // 0 + 0 is written with a zero per column and the carry column (00, or 0000 with two columns
    // of padding): right, and said so.
    const zeros = solveCli(DIR, allLatent.id, [[0, 0]]).get('0 + 0').answer;
    assert.match(zeros, /^00+$/);
    const zero = await open({ a: 0, b: 0, stage: allLatent.id });
    assert.equal(zero.seen.correct, 'true');
    assert.ok((await zero.page.textContent('#answer-note')).startsWith(`${zeros} is 0:`));
    zero.session.assertClean();
    await zero.session.close();
  });

  for (const view of [{ label: 'laptop', viewport: { width: 1280, height: 800 } }, { label: 'phone', viewport: { width: 390, height: 844 } }]) {
    it(`3: an edit's result shows where the user is looking, and is announced (${view.label})`, async () => {
      const { session, page } = await open({ a: 347, b: 285, stage: allLatent.id }, { viewport: view.viewport });
      await page.click('#timeline .tok[data-kind="thought"]');
      for (const button of ['#edit-zero', '#edit-flip', '#edit-replace']) {
        if (button === '#edit-replace') await page.fill('#edit-from', '999+1');
        await page.click(button);
        await page.waitForSelector('#edit-result[data-state=done]', { state: 'attached' });
        const r = await box(page, '#edit-result');
        assert.ok(r.top >= 0 && r.bottom <= r.height, `after ${button} the result spans ${r.top}-${r.bottom} px of a ${r.height} px view`);
        await page.evaluate(() => { document.querySelector('#edit-result').dataset.state = 'seen'; });
      }
      assert.equal(await page.getAttribute('#edit-result', 'role'), 'status');
      assert.equal(await page.getAttribute('#edit-result', 'aria-live'), 'polite');
      session.assertClean();
      await session.close();
    });
  }

  it('4: beyond the trained lengths, probes read without a score ("not measured for this length") and no edit is offered', async () => {
    const [a, b] = [314159, 271828];
    const cli = solveCli(DIR, allLatent.id, [[a, b]]).get(`${a} + ${b}`);
    assert.ok(cliRight(cli, a, b), `the README's problem is answered right: ${cli.answer}`);
    const { session, page } = await open({ a, b, stage: allLatent.id });
    const thoughts = await page.$$('#timeline .tok[data-kind="thought"]');
    assert.equal(thoughts.length, cli.thoughts);
    let probed = 0;
    for (const [slot, token] of thoughts.entries()) {
      await token.click();
      if (await page.isVisible('#probes-box')) {
        probed++;
        const cells = await page.$$eval('#probes tbody td', (tds) => tds.map((td) => td.textContent));
        assert.ok(cells.every((c) => !c.includes('%')), `thought ${slot}: no held-out score beside ${cells}`);
        const note = await page.textContent('#probes-note');
        assert.match(note, /Not measured for this length/);
        assert.match(note, new RegExp(`1 to ${manifest.max_digits} digits`));
        assert.match(note, /6-digit problems/);
      }
      assert.equal(await page.isVisible('#edit-box'), false, `thought ${slot}: no edit controls`);
      assert.equal(await page.isVisible('#edit-none'), true, `thought ${slot}: a note says why`);
      assert.match(await page.textContent('#edit-none'), new RegExp(`1 to ${manifest.max_digits} digits`));
    }
    assert.ok(probed > 0, 'the probes still read the thoughts they have');
    session.assertClean();
    await session.close();
    // The same thoughts within the trained lengths: scores and edits, at every thought.
    const short = await open({ a: 347, b: 285, stage: allLatent.id });
    for (const token of await short.page.$$('#timeline .tok[data-kind="thought"]')) {
      await token.click();
      assert.equal(await short.page.isVisible('#edit-box'), true);
      assert.ok((await short.page.textContent('#probes tbody')).includes('%'));
    }
    short.session.assertClean();
    await short.session.close();
    // An edit typed in the address on the long problem: refused with the reason.
    const linked = await open({ a, b, stage: allLatent.id, patch: '5=zero' });
    await linked.page.waitForSelector('#edit-result[data-state=error]', { state: 'attached' });
    assert.match(await linked.page.textContent('#edit-result'), new RegExp(`1 to ${manifest.max_digits} digits`));
    linked.session.assertClean();
    await linked.session.close();
  });

  it('5: beside the flip button, what flipping that carry did when it was measured at this stage', async () => {
    const flips = JSON.parse(fs.readFileSync(path.join(DIR, 'eval', 'flips.json'), 'utf8'));
    const stages = [...new Set(flips.map((f) => f.stage))].filter((id) => manifest.stages.some((s) => s.id === id));
    assert.ok(stages.length > 0, 'eval/flips.json measured the shipped stages');
    const { session, page } = await open({ a: 347, b: 285, stage: allLatent.id });
    for (const id of [stages[0], stages.at(-1)]) {
      await page.goto(pageUrl(env.srv.url, { a: 347, b: 285, stage: id, animate: 0 }));
      await waitForAnswer(page, 347, 285);
      await page.click('#timeline .tok[data-kind="thought"]');
      const columns = await page.$$eval('#edit-column option', (os) => os.map((o) => Number(o.value)));
      assert.ok(columns.length > 0, `${id}: the first thought has carry probes`);
      const rows = flips.filter((f) => f.stage === id);
      const most = Math.max(...rows.map((f) => f.as_the_carry_would));
      for (const column of columns) {
        await page.selectOption('#edit-column', String(column));
        const row = rows.find((f) => f.slot === 0 && f.column === column);
        const note = await page.textContent('#flip-note');
        assert.ok(note.includes(`moved the answer as the carry would in ${row.as_the_carry_would.toFixed(1)}%`), `${id} column ${column}: ${note}`);
        assert.ok(note.includes(`${row.problems.toLocaleString('en')} held-out problems`), note);
        assert.ok(note.includes(`${most.toFixed(1)}%`), `${id}: the stage's largest effect, ${most}: ${note}`);
      }
    }
    session.assertClean();
    await session.close();
  });

  it('6: projector mode scales its type (24 px at 1920x1080), fits 1280x720 with an engine notice, every chapter, and Escape leaves it', async () => {
    const big = await open({ projector: 1, chapter: 0, engine: 'reference' }, { viewport: { width: 1920, height: 1080 } });
    await big.page.waitForSelector('#answer[data-state=done]', { timeout: TIMEOUT });
    for (const sel of ['body', '#chapter', '#stage-about', '#size-note', '#answer-note', '#verdict', '.legend', '#position', '.field label', '#timeline .tok', '#problem-form button']) {
      const px = await big.page.$eval(sel, (e) => parseFloat(getComputedStyle(e).fontSize));
      assert.ok(px >= 24, `${sel} is ${px} px at 1920x1080`);
    }
    await big.page.keyboard.press('Escape');
    assert.equal(await big.page.evaluate(() => document.body.classList.contains('projector')), false, 'Escape leaves projector mode');
    assert.equal(pageParams(big.page.url()).projector, undefined, 'and the address says so');
    big.session.assertClean();
    await big.session.close();

    // Chapters animate as in a class; End jumps to each one's answer.
    const { session, page } = await open({ projector: 1, chapter: 0, animate: undefined }, { viewport: { width: 1280, height: 720 }, noWebGpu: true });
    await page.waitForSelector('#answer[data-state=playing]', { timeout: TIMEOUT });
    const chapters = Number((await page.textContent('#chapter-title')).match(/\/(\d+)/)[1]);
    for (let i = 0; i < chapters; i++) {
      if (i > 0) {
        await page.click('#chapter-next');
        await page.waitForSelector('#answer[data-state=playing]', { timeout: TIMEOUT });
      }
      await page.keyboard.press('End');
      await page.waitForSelector('#answer[data-state=done]', { timeout: TIMEOUT });
      assert.equal(await page.isVisible('#engine-notice'), true, 'an engine notice is shown');
      await page.evaluate(() => window.scrollTo(0, 0));
      for (const sel of ['#chapter-prev', '#chapter-next', '#chapter', '#play', '#scrub', '#stack', '#answer', '#verdict', '#size-note']) {
        const r = await box(page, sel);
        assert.ok(r.top >= 0 && r.bottom <= 720, `chapter ${i + 1}: ${sel} spans ${r.top}-${r.bottom} px of 720`);
      }
    }
    session.assertClean();
    await session.close();
  });

  it('8: no stale model facts: layers and parameters from the manifest, pause counts that follow the problem, chapter 1 as it runs', async () => {
    const pause = manifest.stages.find((s) => s.kind === 'pause');
    const { session, page } = await open({ a: 314159, b: 271828, stage: pause.id });
    const footer = await page.textContent('#model-facts');
    assert.match(footer, new RegExp(`^a ${manifest.model.n_layer}-layer GPT-2 with \\d+\\.\\d\\dM parameters$`), footer);
    const described = await page.getAttribute('meta[name=description]', 'content');
    assert.doesNotMatch(described, /\d+-layer|\d(\.\d+)?M-parameter/, described);
    const pauses = await page.$$eval('#timeline .tok[data-kind="pause"]', (els) => els.length);
    assert.equal(pauses, solveCli(DIR, pause.id, [[314159, 271828]]).get('314159 + 271828').thoughts);
    const label = await page.$eval('#stage', (s) => s.selectedOptions[0].textContent);
    for (const [, n] of label.matchAll(/(\d+) pause/g)) assert.equal(Number(n), pauses, `${label} on a problem with ${pauses} pauses`);
    await page.goto(pageUrl(env.srv.url, { chapter: 0 }));
    await page.waitForSelector('#answer[data-state=done], #answer[data-state=playing]', { timeout: TIMEOUT });
    const chapter = await page.textContent('#chapter');
    assert.doesNotMatch(chapter, /Press Solve/, 'chapter 1 does not ask for what is already running');
    assert.match(chapter, new RegExp(`${manifest.model.n_layer} layers?`));
    session.assertClean();
    await session.close();
  });

  it('9: a first visit shows a right answer at once and invites the animation, the stack in view, plain words before jargon', async () => {
    const { session, page } = await open({}, { viewport: { width: 1280, height: 800 }, typed: '' });
    await page.waitForSelector('#answer[data-state=done], #answer[data-state=playing]', { timeout: TIMEOUT, state: 'attached' });
    assert.equal(await page.getAttribute('#answer', 'data-state'), 'done', 'the answer is not held back for an animation');
    assert.equal(await page.getAttribute('#answer', 'data-correct'), 'true');
    const watch = await box(page, '#watch');
    assert.ok(await page.isVisible('#watch') && watch.bottom <= 800, `the invitation to animate is in view (${watch.top}-${watch.bottom})`);
    const stack = await box(page, '#stack');
    assert.ok(stack.bottom <= 800, `the stack spans ${stack.top}-${stack.bottom} px of 800`);
    await page.waitForSelector('#status[data-state=ready]', { state: 'attached' });
    await page.waitForFunction(() => /sha256/.test(document.querySelector('#weights-note')?.textContent ?? ''), null, { timeout: TIMEOUT });
    // What greets a visitor above the problem: no renderer names, no checksums.
    const top = await page.evaluate(() => {
      const limit = document.querySelector('#problem').getBoundingClientRect().top;
      return [...document.querySelectorAll('header, #notices, #walkthrough')]
        .filter((e) => e.getBoundingClientRect().top < limit && e.checkVisibility())
        .map((e) => e.innerText).join(' ');
    });
    assert.doesNotMatch(top, /swiftshader|sha-?256|software renderer|wasm|WGSL/i, top);
    // Those facts are still on the page, lower down.
    const notice = await page.isVisible('#engine-notice');
    if (notice) assert.ok((await box(page, '#engine-notice')).top > stack.bottom);
    await page.click('#watch');
    assert.equal(await page.getAttribute('#play', 'aria-pressed'), 'true', '#watch plays the animation');
    session.assertClean();
    await session.close();
  });

  it('10: addresses read "+" as typed; an edit waits for the answer; suggested commands are quoted for a shell', async () => {
    const whole = await open({}, { typed: `a=347+285&stage=${allLatent.id}&animate=0` });
    const cli = solveCli(DIR, allLatent.id, [[347, 285]]).get('347 + 285');
    const seen = await waitForAnswer(whole.page, 347, 285);
    assert.equal(seen.answer, cli.answer);
    assert.deepEqual([await whole.page.inputValue('#a'), await whole.page.inputValue('#b')], ['347', '285']);
    whole.session.assertClean();
    await whole.session.close();

    const typed = await open({}, { typed: `a=347&b=285&stage=${allLatent.id}&animate=0&patch=0=from:999+1` });
    await typed.page.waitForSelector('#edit-result[data-state=done], #edit-result[data-state=error]', { state: 'attached', timeout: TIMEOUT });
    const edited = interveneCli(DIR, allLatent.id, ['0=from:999+1'], 347, 285);
    assert.equal(await typed.page.getAttribute('#edit-result', 'data-text'), edited.edited_text, await typed.page.textContent('#edit-result'));
    assert.equal(pageParams(typed.page.url()).patch, '0=from:999+1', 'the address keeps the edit as typed');
    typed.session.assertClean();
    await typed.session.close();
    const long = await open({}, { typed: `a=347&b=285&stage=${allLatent.id}&animate=0&patch=0=from:999999+1` });
    await long.page.waitForSelector('#edit-result[data-state=error]', { state: 'attached', timeout: TIMEOUT });
    const why = await long.page.textContent('#edit-result');
    assert.match(why, /999999/);
    assert.doesNotMatch(why, /space/);
    long.session.assertClean();
    await long.session.close();

    // With the animation on, the edit (and the sum it names) waits for the model's answer.
    const animated = await open({}, { typed: `a=347&b=285&stage=${allLatent.id}&patch=0=zero` });
    await animated.page.waitForSelector('#answer[data-state=playing]', { timeout: TIMEOUT });
    assert.equal(await animated.page.getAttribute('#edit-result', 'data-state'), 'idle');
    assert.equal((await animated.page.textContent('#edit-result')).trim(), '');
    await animated.page.keyboard.press('End');
    await waitForAnswer(animated.page, 347, 285);
    await animated.page.waitForSelector('#edit-result[data-state=done]', { state: 'attached', timeout: TIMEOUT });
    animated.session.assertClean();
    await animated.session.close();

    // The command shown for an edit typed with spaces runs in a shell as the edit the page made.
    const { session, page } = await open({ a: 347, b: 285, stage: allLatent.id });
    await page.click('#timeline .tok[data-kind="thought"]');
    await page.fill('#edit-from', '999 + 1');
    await page.click('#edit-replace');
    await page.waitForSelector('#edit-result[data-state=done]', { state: 'attached' });
    const command = await page.getAttribute('#edit-result', 'data-command');
    assert.ok((await page.textContent('#edit-result')).endsWith(`Command line: ${command}`));
    const run = spawnSync('bash', ['-c', `coconut() { "$COCONUT" "$@" --weights "$WEIGHTS" --json; }; ${command}`], {
      encoding: 'utf8', env: { ...process.env, COCONUT, WEIGHTS: DIR },
    });
    assert.equal(run.status, 0, `${command}: ${run.stderr}`);
    assert.equal(JSON.parse(run.stdout).edited_text, await page.getAttribute('#edit-result', 'data-text'), command);
    session.assertClean();
    await session.close();
  });

  it('11: "test it here" is announced, the player needs no emoji font, the stage menu fits a phone, a failed load says the engine is not running', async () => {
    const { session, page } = await open({ a: 347, b: 285, stage: allLatent.id }, { viewport: { width: 390, height: 844 } });
    assert.equal(await page.getAttribute('#test-result', 'role'), 'status');
    assert.equal(await page.getAttribute('#test-result', 'aria-live'), 'polite');
    const menu = await box(page, '#stage');
    const card = await box(page, '#problem');
    assert.ok(menu.right <= card.right && menu.left >= card.left, `the stage menu spans ${menu.left}-${menu.right}, its card ${card.left}-${card.right}`);
    const labels = [];
    labels.push(await page.textContent('#play'));
    await page.click('#play');
    labels.push(await page.textContent('#play'));
    assert.match(labels[1], /Pause/);
    for (const l of labels) assert.doesNotMatch(l, /[\u2300-\u23ff\u{1f000}-\u{1faff}\ufe0f]/u, `"${l}" needs an emoji font`);
    session.assertClean();
    await session.close();

    const failed = await open({ a: 1, b: 2, weights: 'missing/' });
    await failed.page.waitForSelector('#status[data-state=failed]', { timeout: TIMEOUT, state: 'attached' });
    const badge = await failed.page.textContent('#engine');
    assert.doesNotMatch(badge, /starting/, badge);
    assert.match(badge, /not running/i);
    failed.session.assertClean({ allowFailedLoads: true, allowConsole: true });
    await failed.session.close();
  });
});
