// Editing a thought and watching the rest of the run follow: the inspector's controls and the
// `?patch=` address parameter. The wasm session resolves and runs the edits with the same core
// code as `coconut intervene --patch` (`J=zero`, `J=from:A+B`, `J=flip:C`, J from 0), on the
// reference engine, and the answer is shown under the model's own.

// `els`: the edit controls and the result line; `app()`: the wasm app; `current()`: what is on
// screen ({ a, b, stage, view, pos }).
// The position of a view's first fed-back thought (-1: none).
const firstThought = (view) => view?.tokens.findIndex((t) => t.kind === 'thought') ?? -1;

export function editor(els, app, current) {
  // The address says which edit is on screen, so that a shared link shows it too.
  const remember = (patches) => {
    const url = new URL(location.href);
    if (patches) url.searchParams.set('patch', patches);
    else url.searchParams.delete('patch');
    history.replaceState(null, '', url);
  };

  const slotOf = ({ view, pos }) => {
    const first = firstThought(view);
    return first >= 0 && view.tokens[pos]?.kind === 'thought' ? pos - first : -1;
  };

  const clear = () => {
    els.result.dataset.state = 'idle';
    els.result.textContent = '';
    remember(null);
  };

  // Runs `patches` on what is on screen and says what came out, or why nothing did.
  const run = (patches) => {
    const { a, b, stage } = current();
    try {
      const r = JSON.parse(app().solveEdited(a, b, stage, patches));
      remember(patches);
      const mark = (answer) => (answer === r.expected ? '✓' : '✗');
      els.result.dataset.state = 'done';
      delete els.result.dataset.predicted;
      els.result.dataset.answer = r.edited_answer ?? '';
      els.result.dataset.text = r.edited_text;
      els.result.textContent = `With ${r.patches.join(', ')} (counting from 0; T1 is thought 0) the model answers `
        + `${r.edited_answer ?? '(nothing)'} ${mark(r.edited_answer)}; as trained ${r.answer ?? '(nothing)'} `
        + `${mark(r.answer)}, the sum is ${r.expected}.${probePrediction(patches, r.expected)} `
        + `Command line: coconut intervene --stage ${r.stage} `
        + `--patch ${patches.split(/[;,]/).map((p) => p.trim()).filter(Boolean).join(' --patch ')} "${a} + ${b}"`;
    } catch (e) {
      els.result.dataset.state = 'error';
      els.result.dataset.answer = '';
      els.result.textContent = `Edit refused: ${e.message || String(e)}`;
    }
  };

  // For one carry flip: the answer if the model followed its probe, i.e. the sum moved by
  // 10^(column+1) the way the carry the probe read there would move it when flipped.
  const probePrediction = (patches, expected) => {
    const flip = /^\s*(\d+)=flip:(\d+)\s*$/.exec(patches);
    const { view } = current();
    const first = firstThought(view);
    if (!flip || first < 0) return '';
    const [slot, column] = [Number(flip[1]), Number(flip[2])];
    const read = view.positions[first + slot]?.probes.find((x) => x.quantity === 'carry' && x.column === column);
    if (!read) return '';
    const predicted = Number(expected) + (read.value ? -1 : 1) * 10 ** (column + 1);
    els.result.dataset.predicted = String(predicted);
    return ` Its probe read carry ${read.value ? 'yes' : 'no'} for column ${column}; had the answer followed the`
      + ` flipped carry it would be ${predicted}.`;
  };

  const onSlot = (make) => () => {
    const slot = slotOf(current());
    if (slot >= 0) run(make(slot));
  };
  els.zero.addEventListener('click', onSlot((j) => `${j}=zero`));
  els.flip.addEventListener('click', onSlot((j) => `${j}=flip:${els.column.value}`));
  els.replace.addEventListener('click', onSlot((j) => `${j}=from:${els.from.value.trim()}`));
  els.from.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      els.replace.click();
    }
  });

  return {
    // The controls show at a fed-back thought; the flip only where its stage ships probes
    // (the columns the probes cover).
    show(view, pos) {
      const slot = slotOf({ view, pos });
      els.box.hidden = slot < 0;
      if (slot < 0) return;
      const columns = [...new Set((view.positions[pos]?.probes ?? []).filter((r) => r.quantity === 'carry').map((r) => r.column))];
      els.flip.disabled = columns.length === 0;
      els.column.disabled = columns.length === 0;
      if (els.column.options.length !== columns.length) {
        els.column.replaceChildren(...columns.map((c) => new Option(String(c), String(c))));
      }
    },
    clear,
    run,
  };
}
