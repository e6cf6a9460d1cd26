// Text about the stages and the accuracy table, straight from manifest.json.

// What a stage is, from the manifest's `kind` (never from its id): { kind: 'latent' | 'nocot' |
// 'pause', k (latent steps), allLatent }.
export function stageInfo(s, manifest) {
  if (s.kind === 'no_cot') return { kind: 'nocot', k: 0, allLatent: false };
  if (s.kind === 'pause') return { kind: 'pause', k: 0, allLatent: false };
  const k = s.kind?.latent?.k ?? 0;
  const most = Math.max(...manifest.stages.map((x) => x.kind?.latent?.k ?? 0));
  return { kind: 'latent', k, allLatent: k > 0 && k === most };
}

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function stageLabel(s, manifest) {
  const info = stageInfo(s, manifest);
  if (info.kind === 'nocot') return 'Baseline: no chain of thought';
  if (info.kind === 'pause') return `Baseline: ${plural(s.thoughts, 'pause position')}`;
  if (info.k === 0) return `Stage ${info.k}: written chain of thought`;
  return info.allLatent
    ? `Stage ${info.k}: all latent (${plural(s.thoughts, 'thought')})`
    : `Stage ${info.k}: ${plural(s.thoughts, 'thought')}, then written steps`;
}

// The test set's measured greedy accuracy of a stage, overall or for problems whose longer
// operand has `digits` digits: { greedy, n } or null.
export function measured(s, digits) {
  const test = s?.accuracy?.sets?.find((x) => x.set === 'test');
  if (!test) return null;
  if (digits === undefined) return { greedy: test.greedy, n: test.n };
  const d = test.by_digits?.find((x) => x.digits === digits);
  return d ? { greedy: d.greedy, n: d.n } : null;
}

export function stageAbout(s, manifest) {
  if (!s) return '';
  const info = stageInfo(s, manifest);
  const test = measured(s);
  const acc = test ? ` Measured: ${test.greedy.toFixed(2)}% of ${test.n} held-out problems right (greedy).` : '';
  if (info.kind === 'nocot') return `Writes the answer right after the question: no steps, no thoughts.${acc}`;
  if (info.kind === 'pause') {
    return `${plural(s.thoughts, 'extra position')}, each fed the same fixed <latent> embedding (nothing is fed back), then the answer.${acc}`;
  }
  if (info.k === 0) return `Writes every column as a step, then the answer.${acc}`;
  const steps = plural(info.k, 'step');
  const thoughts = plural(s.thoughts, 'continuous thought');
  if (info.allLatent) return `Every step happens as a continuous thought (${thoughts}); nothing is written before the answer.${acc}`;
  return `The first ${steps} happen as ${thoughts}; the rest are written.${acc}`;
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
