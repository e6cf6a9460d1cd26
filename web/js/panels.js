// Text about the stages and the accuracy table, straight from manifest.json.

export function stageLabel(s, manifest) {
  const m = /^stage(\d+)$/.exec(s.id);
  if (m) {
    const k = Number(m[1]);
    const latent = manifest.stages.filter((x) => /^stage\d+$/.test(x.id));
    const allLatent = Math.max(...latent.map((x) => x.thoughts));
    if (k === 0) return 'Stage 0: written chain of thought';
    return s.thoughts === allLatent
      ? `Stage ${k}: all latent (${s.thoughts} thoughts)`
      : `Stage ${k}: ${s.thoughts} thought${s.thoughts > 1 ? 's' : ''}, then written steps`;
  }
  if (s.id === 'nocot') return 'Baseline: no chain of thought';
  if (s.id === 'pause') return `Baseline: ${s.thoughts} pause tokens`;
  return s.id;
}

export function stageAbout(s, manifest) {
  if (!s) return '';
  const test = s.accuracy?.sets?.find((x) => x.set === 'test');
  const acc = test ? ` Measured: ${test.greedy.toFixed(2)}% of ${test.n} held-out problems right (greedy).` : '';
  if (s.id === 'nocot') return `Writes the answer right after the question, no steps, no thoughts.${acc}`;
  if (s.id === 'pause') return `${s.thoughts} extra positions fed a fixed <latent> embedding (not the previous state), then the answer.${acc}`;
  if (s.thoughts === 0) return `Writes every column as a step, then the answer.${acc}`;
  return `The first ${s.thoughts / manifest.thoughts_per_step} step(s) happen as ${s.thoughts} continuous thought(s); the rest are written.${acc}`;
}

const pct = (v) => (v === undefined || v === null ? '—' : `${v.toFixed(2)}%`);

export function renderAccuracy(table, note, manifest) {
  const sets = ['test', 'ood'];
  const digits = [...new Set(manifest.stages.flatMap((s) =>
    (s.accuracy?.sets?.find((x) => x.set === 'test')?.by_digits || []).map((d) => d.digits)))].sort();
  const head = table.tHead;
  head.replaceChildren();
  const hr = head.insertRow();
  for (const h of ['Stage', 'Greedy (test)', 'Teacher-forced (test)', ...digits.map((d) => `${d}-digit`), '5-digit (never trained)']) {
    const th = document.createElement('th');
    th.textContent = h;
    hr.append(th);
  }
  const body = table.tBodies[0];
  body.replaceChildren();
  let n = null;
  for (const s of manifest.stages) {
    const row = body.insertRow();
    row.dataset.stage = s.id;
    row.insertCell().textContent = stageLabel(s, manifest);
    const bySet = Object.fromEntries(sets.map((name) => [name, s.accuracy?.sets?.find((x) => x.set === name)]));
    const test = bySet.test;
    if (test) n = test.n;
    row.insertCell().textContent = pct(test?.greedy);
    row.insertCell().textContent = pct(test?.teacher_forced);
    for (const d of digits) {
      const cell = test?.by_digits?.find((x) => x.digits === d);
      row.insertCell().textContent = cell ? `${pct(cell.greedy)} (n=${cell.n})` : '—';
    }
    row.insertCell().textContent = bySet.ood ? `${pct(bySet.ood.greedy)} (n=${bySet.ood.n})` : '—';
  }
  note.textContent = n
    ? `Exact match of the greedily generated answer on ${n} held-out problems (1-${manifest.max_digits} digit operands, ` +
      'disjoint from training), measured on these int8 files; teacher-forced: every target token right given the true prefix.'
    : 'These weights carry no measured accuracy.';
}
