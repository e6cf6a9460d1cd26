// Test 2: refused inputs name the problem in #error, never leave #answer done, and the page
// still solves a valid problem afterwards. Also checks for page errors (test 3).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  serverAndBrowser, pageUrl, readManifest, solveCli, waitForAnswer, armAnswer, readAnswer,
  assertSameAsCli, setText, controlWeights, TIMEOUT, ACTION_TIMEOUT,
} from './harness.mjs';

const weights = controlWeights();
const manifest = readManifest(weights.dir);
// The first stage's accepted lengths: the trained range, or for a stage with coupled positions
// the longest operands its manifest figures measured (core's `Manifest::accepted_digits`).
const first = manifest.stages[0];
const max = first.positions === 'coupled'
  ? Math.max(manifest.max_digits, ...(first.accuracy?.sets ?? []).flatMap((s) => (s.by_digits ?? []).map((d) => d.digits)))
  : manifest.max_digits;
const tooLong = '1234567890123456789'.slice(0, max) + '5'; // max + 1 digits

// Each refused operand, and what its message must mention.
const refused = [
  { input: '', why: 'empty', mention: [/empty|missing|enter a number/i] },
  { input: '12a', why: 'letter', mention: [/letter|12a|'a'/i] },
  { input: '-5', why: 'sign', mention: [/sign|negative|-5|minus/i] },
  // More digits than the model was trained on: the message names the range.
  { input: tooLong, why: 'too many digits', mention: [new RegExp(`${tooLong}|${max + 1} digits`), new RegExp(`\\b${max}\\b|${'9'.repeat(max)}`)] },
  { input: '1.5', why: 'decimal', mention: [/decimal|1\.5|whole|'\.'/i] },
];

let session;
const env = serverAndBrowser({ withPage: true, onReady: (e) => ({ session } = e) });

/** Waits until the page has reacted to a refused input: #error non-empty or #answer in error. */
async function waitRefused(page) {
  await page
    .waitForFunction(
      () =>
        (document.querySelector('#error')?.textContent.trim() ?? '') !== '' ||
        document.querySelector('#answer')?.getAttribute('data-state') === 'error',
      null,
      { timeout: ACTION_TIMEOUT, polling: 50 },
    )
    .catch(() => {});
  // Give a late 'done' the chance to show up (it must not).
  await page.waitForTimeout(300);
  return readAnswer(page);
}

function assertRefused(seen, { input, why, mention }, label) {
  assert.notEqual(seen.error, '', `${label}: #error must say why ${JSON.stringify(input)} is refused (${why})`);
  for (const re of mention) assert.match(seen.error, re, `${label}: #error must mention the problem (${why})`);
  assert.notEqual(seen.state, 'done', `${label}: #answer must not be done for refused input`);
  assert.equal(seen.state, 'error', `${label}: #answer data-state must become error`);
}

describe(`refused inputs (${weights.label} weights)`, () => {
  const valid = [347, 285];
  const cli = solveCli(weights.dir, manifest.stages[0].id, [valid]).get('347 + 285');

  it('a valid problem loads and solves first', async () => {
    const { page } = session;
    await page.goto(pageUrl(env.srv.url, { a: valid[0], b: valid[1], stage: manifest.stages[0].id, animate: 0, weights: weights.param }));
    assertSameAsCli(await waitForAnswer(page, ...valid), cli, ...valid, 'first load');
    session.assertClean();
  });

  for (const item of refused) {
    it(`typed operand ${JSON.stringify(item.input)} (${item.why}) is refused, then a valid solve works`, async () => {
      const { page } = session;
      await armAnswer(page);
      await setText(page, '#a', item.input);
      await setText(page, '#b', '3');
      await page.click('#solve');
      assertRefused(await waitRefused(page), item, `#a=${JSON.stringify(item.input)} #b="3"`);

      // The same in the second operand.
      await armAnswer(page);
      await setText(page, '#a', '3');
      await setText(page, '#b', item.input);
      await page.click('#solve');
      assertRefused(await waitRefused(page), item, `#a="3" #b=${JSON.stringify(item.input)}`);

      // The page still works.
      await armAnswer(page);
      await setText(page, '#a', valid[0]);
      await setText(page, '#b', valid[1]);
      await page.click('#solve');
      const seen = await waitForAnswer(page, ...valid, { armed: true });
      assertSameAsCli(seen, cli, ...valid, `valid solve after ${JSON.stringify(item.input)}`);
      session.assertClean();
    });
  }

  if (max > manifest.max_digits) {
    it(`operands longer than trained, up to the ${max} digits measured, are solved as the CLI solves them`, async () => {
      const { page } = session;
      const longer = ['1234567890123456789'.slice(0, max), '9876543210987654321'.slice(0, max)];
      const want = solveCli(weights.dir, first.id, [longer]).get(`${longer[0]} + ${longer[1]}`);
      await page.goto(pageUrl(env.srv.url, { a: longer[0], b: longer[1], stage: first.id, animate: 0, weights: weights.param }));
      assertSameAsCli(await waitForAnswer(page, ...longer), want, ...longer, `${max}-digit operands`);
      // The page says how often this stage gets problems of this length right.
      const note = await page.textContent('#size-note');
      assert.match(note, new RegExp(`${max}-digit \\+ ${max}-digit problems right \\(n = \\d+`), note);
      session.assertClean();
    });
  }

  for (const item of refused.filter((r) => r.input !== '')) {
    it(`?a=${item.input} in the URL is refused on load`, async () => {
      const { page } = session;
      const url = pageUrl(env.srv.url, { a: item.input, b: 3, stage: manifest.stages[0].id, animate: 0, weights: weights.param });
      await page.goto(url);
      // Loading must finish (ready) and the refusal show, not a failed page.
      await page.waitForSelector('#status[data-state=ready], #status[data-state=failed]', { timeout: TIMEOUT, state: 'attached' });
      const seen = await waitRefused(page);
      assert.equal(seen.status, 'ready', `${url}: #status (text: ${seen.statusText})`);
      assertRefused(seen, item, url);
      session.assertClean();
    });
  }
});
