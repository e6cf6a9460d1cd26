// The page's "Measure the edits" at the model card's scale: patching over 1,000 held-out pairs
// on a stage of the shipped int8 weights, in headless Chromium, compared row by row with the
// model card's CLI measurement (weights/eval/patching.json). Not a test (minutes); run with
//   WEB_E2E_RUN=measure-scale bash scripts/web-test.sh     (MEASURE_STAGE, MEASURE_PAIRS)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DIST, server, launch, openPage, pageUrl, waitForAnswer } from './harness.mjs';

const stage = process.env.MEASURE_STAGE ?? 'stage2';
const pairs = Number(process.env.MEASURE_PAIRS ?? 1000);
const cli = JSON.parse(fs.readFileSync(path.join(DIST, 'weights', 'eval', 'patching.json'), 'utf8'))
  .filter((r) => r.stage === stage);
assert.ok(cli.length > 0, `weights/eval/patching.json has no rows for ${stage}`);
assert.equal(cli[0].pairs <= pairs, true);

const srv = await server();
const browser = await launch();
try {
  const session = await openPage(browser);
  const { page } = session;
  page.setDefaultTimeout(30 * 60 * 1000);
  await page.goto(pageUrl(srv.url, { a: 347, b: 285, stage, animate: 0 }));
  await waitForAnswer(page, 347, 285);
  await page.selectOption('#measure-kind', 'patching');
  await page.fill('#measure-n', String(pairs));
  const start = Date.now();
  await page.click('#measure-run');
  await page.waitForSelector('#measure-result[data-state=done], #measure-result[data-state=error]', { state: 'attached' });
  const seconds = (Date.now() - start) / 1000;
  const seen = await page.$eval('#measure-result', (e) => ({ ...e.dataset, text: e.textContent }));
  assert.equal(seen.state, 'done', seen.text);
  const rows = JSON.parse(seen.json);
  if (pairs === cli[0].pairs) assert.deepEqual(rows, cli, 'the page measured what the model card says');
  console.log(JSON.stringify({ stage, pairs, seconds, identical_to_model_card: pairs === cli[0].pairs, rows }));
  session.assertClean();
  await session.close();
} finally {
  await browser.close();
  await srv.close();
}
