// Text about the stages and the accuracy table, straight from manifest.json. The figure shown
// beside one problem is never looked up here: it comes with the solve (the view's `measured`,
// core's `StageEntry::measured_for`).

// What a stage is and how it is named come from Rust (`app.stages()`, set as `stage.info` by the
// loader): { kind: 'latent' | 'nocot' | 'pause', k, allLatent, label, about }.
export const stageInfo = (s) => s.info;
export const stageLabel = (s) => s.info.label;
export const stageAbout = (s) => (s ? s.info.about : '');

const pct = (v) => (v === undefined || v === null ? '—' : `${v.toFixed(2)}%`);

// The table's columns: the test set's overall figures and its lengths, then every other set the
// manifest evaluated, one column per length it counted, each named for what it holds: both
// operands of that length (a set whose every pair is d+d), or every length pair whose longer
// operand has it.
function columnsOf(manifest) {
  const columns = [];
  const seen = new Set();
  for (const s of manifest.stages) {
    for (const set of s.accuracy?.sets ?? []) {
      const pairs = set.by_pair ?? [];
      const equal = pairs.length > 0 && pairs.every((p) => p.a_digits === p.b_digits);
      for (const d of set.by_digits ?? []) {
        const key = `${set.set}:${d.digits}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const label = set.set === 'test'
          ? `${d.digits}-digit (longer operand)`
          : equal
            ? `${d.digits}+${d.digits} digits (never trained)`
            : `longer operand ${d.digits} digits, every length pair (never trained)`;
        columns.push({ set: set.set, digits: d.digits, label, test: set.set === 'test' });
      }
    }
  }
  // The test set's lengths first, then the longer ones in the manifest's order.
  return [...columns.filter((c) => c.test).sort((x, y) => x.digits - y.digits), ...columns.filter((c) => !c.test)];
}

export function renderAccuracy(table, note, manifest) {
  const columns = columnsOf(manifest);
  const head = table.tHead;
  head.replaceChildren();
  const hr = head.insertRow();
  for (const h of ['Stage', `Greedy (test, 1-${manifest.max_digits} digits)`, 'Teacher-forced (test)', ...columns.map((c) => c.label)]) {
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
    for (const c of columns) {
      const d = s.accuracy?.sets?.find((x) => x.set === c.set)?.by_digits?.find((x) => x.digits === c.digits);
      row.insertCell().textContent = d ? `${pct(d.greedy)} (n=${d.n})` : '—';
    }
  }
  // What the longer sets hold, read from the manifest (the first stage that has them).
  const sets = manifest.stages.find((s) => s.accuracy?.sets?.length)?.accuracy.sets ?? [];
  const held = sets.filter((x) => x.set !== 'test').map((x) => {
    const digits = (x.by_digits ?? []).map((d) => d.digits);
    const pairs = x.by_pair ?? [];
    const [lo, hi] = [Math.min(...digits), Math.max(...digits)];
    const range = lo === hi ? `${lo}` : `${lo}-${hi}`;
    if (pairs.length > 0 && pairs.every((p) => p.a_digits === p.b_digits)) return `${x.n} problems of two ${range}-digit operands`;
    const per = [...new Set(pairs.map((p) => p.n))];
    return `every length pair whose longer operand has ${range} digits (${per.length === 1 ? `${per[0]} problems per pair` : `${x.n} problems`})`;
  });
  note.textContent = n
    ? `Exact match of the greedily generated answer on ${n} held-out problems (1-${manifest.max_digits} digit operands, ` +
      `disjoint from training)${held.length ? `, and on longer operands never trained on: ${held.join('; ')}` : ''}; ` +
      'measured on these files as shipped. Teacher-forced: every target token right given the true prefix. ' +
      'The figure shown beside a problem is that of its own length pair.'
    : 'These weights carry no measured accuracy.';
}
