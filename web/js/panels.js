// Text about the stages and the accuracy table, straight from manifest.json.

// What a stage is and how it is named come from Rust (`app.stages()`, set as `stage.info` by the
// loader): { kind: 'latent' | 'nocot' | 'pause', k, allLatent, label, about }.
export const stageInfo = (s) => s.info;
export const stageLabel = (s) => s.info.label;

// The test set's measured greedy accuracy of a stage, overall or for problems whose longer
// operand has `digits` digits: { greedy, n } or null.
export function measured(s, digits) {
  const test = s?.accuracy?.sets?.find((x) => x.set === 'test');
  if (!test) return null;
  if (digits === undefined) return { greedy: test.greedy, n: test.n };
  // Longer operands than trained: the largest held-out set that measured them.
  const found = (s.accuracy.sets || [])
    .flatMap((x) => x.by_digits || [])
    .filter((x) => x.digits === digits)
    .sort((x, y) => y.n - x.n);
  const d = test.by_digits?.find((x) => x.digits === digits) ?? found[0];
  return d ? { greedy: d.greedy, n: d.n } : null;
}

export const stageAbout = (s) => (s ? s.info.about : '');

const pct = (v) => (v === undefined || v === null ? '—' : `${v.toFixed(2)}%`);

export function renderAccuracy(table, note, manifest) {
  const digitsIn = (sets) => [...new Set(manifest.stages.flatMap((s) =>
    (s.accuracy?.sets || []).filter(sets).flatMap((x) => x.by_digits || []).map((d) => d.digits)))].sort((x, y) => x - y);
  const digits = digitsIn((x) => x.set === 'test');
  // Held-out sets of longer operands than trained (the data's 5-digit set, and the 6- and
  // 8-digit ones of stages evaluated on them), one column per length.
  const longer = digitsIn((x) => x.set !== 'test').filter((d) => d > manifest.max_digits);
  const head = table.tHead;
  head.replaceChildren();
  const hr = head.insertRow();
  for (const h of ['Stage', 'Greedy (test)', 'Teacher-forced (test)', ...digits.map((d) => `${d}-digit`),
    ...longer.map((d) => `${d}-digit (never trained)`)]) {
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
    row.insertCell().textContent = stageLabel(s);
    const test = s.accuracy?.sets?.find((x) => x.set === 'test');
    if (test) n = test.n;
    row.insertCell().textContent = pct(test?.greedy);
    row.insertCell().textContent = pct(test?.teacher_forced);
    for (const d of [...digits, ...longer]) {
      const m = measured(s, d);
      row.insertCell().textContent = m ? `${pct(m.greedy)} (n=${m.n})` : '—';
    }
  }
  note.textContent = n
    ? `Exact match of the greedily generated answer on ${n} held-out problems (1-${manifest.max_digits} digit operands, ` +
      'disjoint from training), and on sets of longer operands never trained on, measured on these files as shipped; ' +
      'teacher-forced: every target token right given the true prefix.'
    : 'These weights carry no measured accuracy.';
}
