// Test 5: weights that cannot be used. A folder that is not there, and a copy of the fixture with
// one flipped byte in a stage file: opening on that stage, #status must end failed with a message
// saying what is wrong; opening on another, the page answers and then names the broken stage. The
// page must not throw (a 404 in the console is the expected network noise, nothing else).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { server, launch, openPage, pageUrl, readManifest, readAnswer, FIXTURE, TIMEOUT } from './harness.mjs';

let browser;
let srv;
let tmp;
const manifest = readManifest(FIXTURE);
// The stage whose file gets the flipped byte; the page is asked for exactly that stage.
const bad = manifest.stages.find((s) => s.id !== manifest.stages[0].id) ?? manifest.stages[0];

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'coconut-e2e-'));
  const copy = path.join(tmp, 'weights');
  fs.cpSync(FIXTURE, copy, { recursive: true });
  const file = path.join(copy, bad.file);
  const bytes = fs.readFileSync(file);
  // A byte in the tensor data (the end of the file), so the size and the header stay valid.
  bytes[bytes.length - 7] ^= 0x5a;
  fs.writeFileSync(file, bytes);
  srv = await server({ '/bad-weights': copy });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function waitFailed(page) {
  try {
    await page.waitForSelector('#status[data-state=failed]', { timeout: TIMEOUT, state: 'attached' });
  } catch (err) {
    throw new Error(`#status never became failed; the page shows ${JSON.stringify(await readAnswer(page))}`, { cause: err });
  }
  return readAnswer(page);
}

describe('unusable weights', () => {
  it('?weights=missing/ fails with a message', async (t) => {
    const session = await openPage(browser);
    try {
      await session.page.goto(pageUrl(srv.url, { weights: 'missing/', a: 1, b: 2, animate: 0 }));
      const seen = await waitFailed(session.page);
      t.diagnostic(`#status: ${seen.statusText}`);
      assert.notEqual(seen.statusText, '', '#status says why loading failed');
      assert.match(seen.statusText, /missing|manifest|404|not found|load|fetch/i, '#status names what could not be loaded');
      assert.notEqual(seen.state, 'done', '#answer must not be done without weights');
      t.diagnostic(`console errors: ${JSON.stringify(session.log.map((e) => e.text))}`);
      session.assertClean({ allowFailedLoads: true, allowConsole: true });
    } finally {
      await session.close();
    }
  });

  it(`a flipped byte in ${bad.file} fails naming the checksum or the file`, async (t) => {
    const session = await openPage(browser);
    try {
      await session.page.goto(pageUrl(srv.url, { weights: 'bad-weights/', stage: bad.id, a: 1, b: 2, animate: 0 }));
      const seen = await waitFailed(session.page);
      t.diagnostic(`#status: ${seen.statusText}`);
      const escaped = bad.file.replace(/\./g, '\\.');
      assert.match(seen.statusText, new RegExp(`sha-?256|checksum|${escaped}`, 'i'), '#status names the sha256 mismatch or the file');
      assert.notEqual(seen.state, 'done', `#answer must not be done with a corrupted ${bad.file}`);
      t.diagnostic(`console errors: ${JSON.stringify(session.log.map((e) => e.text))}`);
      session.assertClean({ allowFailedLoads: true, allowConsole: true });
    } finally {
      await session.close();
    }
  });

  it(`a flipped byte in a stage not opened (${bad.file}) leaves the page working and names it`, async (t) => {
    const session = await openPage(browser);
    try {
      const opening = manifest.stages[0].id;
      await session.page.goto(pageUrl(srv.url, { weights: 'bad-weights/', stage: opening, a: 1, b: 2, animate: 0 }));
      await session.page.waitForSelector('#answer[data-state=done]', { timeout: TIMEOUT, state: 'attached' });
      // The other stages load behind the first answer; the broken one is named once they are in.
      await session.page.waitForFunction(() => /^Loaded \d+ of \d+ stages/.test(document.querySelector('#status')?.textContent ?? ''), null, { timeout: TIMEOUT });
      const seen = await readAnswer(session.page);
      t.diagnostic(`#status: ${seen.statusText}`);
      assert.equal(seen.status, 'ready', '#status stays ready');
      assert.match(seen.statusText, new RegExp(`${bad.id} could not be loaded: .*(sha-?256|checksum)`, 'i'), '#status names the stage and why');
      const option = await session.page.$eval(`#stage option[value="${bad.id}"]`, (o) => ({ disabled: o.disabled, text: o.textContent }));
      assert.ok(option.disabled, `${bad.id} cannot be chosen (${option.text})`);
      session.assertClean({ allowFailedLoads: true, allowConsole: true });
    } finally {
      await session.close();
    }
  });
});
