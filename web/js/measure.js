// "Measure the edits": the model card's patching and carry-flip tables, measured in this browser
// on the selected stage with the same core code as `coconut intervene --measure N` /
// `--measure-flips N` (reference engine, the shipped int8 weights), a few problems at a time so
// the page stays responsive; the numbers equal the command line's (e2e-tested).

const pct = (v) => `${v.toFixed(1)}%`;

// Table head and rows for what was counted so far.
function render(table, progress) {
  const head = table.tHead;
  const body = table.tBodies[0];
  const rows = progress.effects;
  if (progress.kind === 'patching') {
    const columns = rows[0]?.column_took_b.length ?? 0;
    head.innerHTML = '<tr><th>Thought</th><th>Pairs</th><th>Answer unchanged</th><th>Became B\'s sum</th>'
      + Array.from({ length: columns }, (_, c) => `<th>Column ${c} took B's digit</th>`).join('') + '</tr>';
    body.replaceChildren(...rows.map((r) => {
      const tr = document.createElement('tr');
      const cells = [`T${r.slot + 1}`, String(r.pairs), pct(r.unchanged), pct(r.became_b),
        ...r.column_took_b.map(([p, n]) => (n ? `${pct(p)} (n = ${n})` : '—'))];
      for (const c of cells) tr.insertCell().textContent = c;
      return tr;
    }));
  } else {
    head.innerHTML = '<tr><th>Thought</th><th>Carry of column</th><th>Problems</th><th>Answer unchanged</th>'
      + '<th>Moved as the flipped carry would</th><th>Probe accuracy (held out)</th></tr>';
    body.replaceChildren(...rows.map((r) => {
      const tr = document.createElement('tr');
      const cells = [`T${r.slot + 1}`, String(r.column), String(r.problems), pct(r.unchanged),
        pct(r.as_the_carry_would), pct(r.probe_accuracy)];
      for (const c of cells) tr.insertCell().textContent = c;
      return tr;
    }));
  }
}

// `els`: kind, n, run, result, table; `app()`: the wasm app; `stage()`: the selected stage id;
// `exclusive(fn)`: runs fn when no other model work runs. Returns { stop }.
export function measurer(els, app, stage, exclusive) {
  let stop = false;
  const run = () => {
    if (els.run.dataset.running === 'true') {
      stop = true;
      return;
    }
    stop = false;
    exclusive(async () => {
      const n = Math.round(Number(els.n.value));
      if (!Number.isFinite(n) || n < 1 || n > 1000) {
        els.result.dataset.state = 'error';
        els.result.textContent = 'Choose between 1 and 1000.';
        return;
      }
      const [id, kind] = [stage(), els.kind.value];
      try {
        app().measureStart(id, kind, n);
      } catch (e) {
        els.result.dataset.state = 'error';
        els.result.textContent = `Cannot measure: ${e.message || String(e)}`;
        return;
      }
      els.table.tHead.replaceChildren();
      els.table.tBodies[0].replaceChildren();
      els.result.dataset.state = 'running';
      els.run.dataset.running = 'true';
      els.run.textContent = 'Stop';
      const start = performance.now();
      let progress = null;
      try {
        while (!stop && (progress === null || progress.done < progress.n)) {
          progress = JSON.parse(app().measureMore(kind === 'patching' ? 5 : 10));
          render(els.table, progress);
          els.result.textContent = `${progress.done} of ${n} ${kind === 'patching' ? 'pairs' : 'problems'}…`;
          await new Promise((r) => setTimeout(r, 0));
        }
      } catch (e) {
        els.result.dataset.state = 'error';
        els.result.textContent = `The measurement failed: ${e.message || String(e)}`;
        return;
      } finally {
        els.run.dataset.running = 'false';
        els.run.textContent = 'Measure';
      }
      const seconds = ((performance.now() - start) / 1000).toFixed(1);
      const finished = progress.done === progress.n;
      els.result.dataset.state = finished ? 'done' : 'stopped';
      els.result.dataset.json = JSON.stringify(progress.effects);
      els.result.textContent = `${finished ? '' : 'Stopped: '}${progress.done} of ${n} held-out `
        + `${kind === 'patching' ? 'pairs' : 'problems'} on ${progress.stage} in ${seconds} s. Command line: `
        + `coconut intervene --stage ${progress.stage} --${kind === 'patching' ? 'measure' : 'measure-flips'} ${n}`;
    });
  };
  els.run.addEventListener('click', run);
  return { stop: () => { stop = true; } };
}
