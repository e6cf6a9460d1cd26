// Works offline once loaded: after one visit the service worker holds the page, the wasm and the
// weights, so a reload with the network cut still loads the model and solves.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openPage, pageUrl, readAnswer, TIMEOUT, serverAndBrowser } from './harness.mjs';

// The server and the browser of this file's tests, started before them.
const env = serverAndBrowser();

describe('offline', () => {
  it('reloads and solves with the network cut after one visit', async () => {
    const p = await openPage(env.browser);
    try {
      const url = pageUrl(env.srv.url, { a: 347, b: 285, animate: 0, engine: 'reference' });
      await p.page.goto(url);
      await p.page.waitForSelector('#answer[data-state=done]', { timeout: TIMEOUT, state: 'attached' });
      const online = await readAnswer(p.page);
      // The page says when the worker has stored every file it loaded (the wasm, the scripts, every
      // stage's weights); only then can a reload without network work.
      await p.page.waitForSelector('#offline-state[data-state=ready]', { timeout: TIMEOUT, state: 'attached' });
      assert.equal(await p.page.textContent('#offline-state'), 'Saved for offline use.');
      await p.context.setOffline(true);
      await p.page.reload();
      await p.page.waitForSelector('#answer[data-state=done]', { timeout: TIMEOUT, state: 'attached' });
      const offline = await readAnswer(p.page);
      assert.equal(offline.status, 'ready');
      assert.equal(offline.answer, online.answer);
      assert.equal(offline.text, online.text);
      p.assertClean();
    } finally {
      await p.close();
    }
  });
});
