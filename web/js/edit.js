// Editing a thought and watching the rest of the run follow: the inspector's controls and the
// `?patch=` address parameter. The wasm session resolves and runs the edits with the same core
// code as `coconut intervene --patch` (`J=zero`, `J=from:A+B`, `J=flip:C`, J from 0), on the
// reference engine; the result shows under the controls (where the click was) and is announced.
// Edits exist where `coconut intervene` makes them (the view's `edits`: problems of the trained
// lengths, the stage's own thought slots); elsewhere the controls give way to a note saying why.

import { updateAddress } from './address.js';

// The position of a view's first fed-back thought (-1: none).
const firstThought = (view) => view?.tokens.findIndex((t) => t.kind === 'thought') ?? -1;
const pct = (v) => `${v.toFixed(1)}%`;

// `els`: the edit controls, the result line, the flip note and the no-edit note; `app()`: the
// wasm app; `current()`: what is on screen ({ a, b, stage, view, pos }).
export function editor(els, app, current) {
  // The address says which edit is on screen, so that a shared link shows it too.
  const remember = (patches) => updateAddress({ patch: patches || null });

  // The thought slot (from 0) at `pos`, or -1 where there is none.
  const thoughtAt = ({ view, pos }) => {
    const first = firstThought(view);
    return first >= 0 && view.tokens[pos]?.kind === 'thought' ? pos - first : -1;
  };

  const clear = () => {
    els.result.dataset.state = 'idle';
    els.result.textContent = '';
    remember(null);
  };

  // An answer with the engine's verdict on it: "0632 ✓".
  const marked = (v) => `${v.answer ?? '(nothing)'} ${v.mark}`;

  // Runs `patches` on what is on screen and says what came out, or why nothing did.
  const run = (patches) => {
    const { a, b, stage } = current();
    try {
      const r = JSON.parse(app().solveEdited(a, b, stage, patches));
      remember(patches);
      els.result.dataset.state = 'done';
      delete els.result.dataset.predicted;
      els.result.dataset.answer = r.edited_answer ?? '';
      els.result.dataset.correct = String(r.edited_verdict.correct);
      els.result.dataset.text = r.edited_text;
      els.result.dataset.command = r.command;
      els.result.textContent = `With ${r.patches.join(', ')} (counting from 0; T1 is thought 0) the model answers `
        + `${marked(r.edited_verdict)}; as trained ${marked(r.verdict)}, the sum is ${r.expected}.`
        + `${probePrediction(patches, r.expected)} Command line: ${r.command}`;
    } catch (e) {
      els.result.dataset.state = 'error';
      els.result.dataset.answer = '';
      els.result.textContent = `Edit refused: ${e.message || String(e)}`;
    }
    // Where the user is looking: the controls they just used (a long page may have moved).
    els.result.scrollIntoView?.({ block: 'nearest' });
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

  // What the measurements say a flip of this thought and column does at this stage.
  const describeFlip = () => {
    const { view, pos } = current();
    const slot = thoughtAt({ view, pos });
    const flips = view?.flips;
    els.flipNote.dataset.measured = String(Boolean(flips));
    if (!flips) {
      els.flipNote.textContent = 'What a carry flip does at this stage was not measured for these weights.';
      return;
    }
    const column = Number(els.column.value);
    const row = flips.rows.find((r) => r.slot === slot && r.column === column);
    const here = row
      ? `Measured on ${row.problems.toLocaleString('en')} held-out problems of 1 to ${flips.digits} digits `
        + `(coconut intervene --measure-flips): flipping this carry moved the answer as the carry would in `
        + `${pct(row.as_the_carry_would)} of them and left it unchanged in ${pct(row.unchanged)}.`
      : `This flip was not measured (thought ${slot}, column ${column}).`;
    const stage = flips.most < 1
      ? ` At this stage no carry flip moved the answer that way in more than ${pct(flips.most)} of the problems:`
        + ' the answer does not follow what these probes read.'
      : ` At this stage the flip that moved it most did so in ${pct(flips.most)} (thought ${flips.most_slot}, column ${flips.most_column}).`;
    els.flipNote.textContent = here + stage;
  };

  const onSlot = (make) => () => {
    const slot = thoughtAt(current());
    if (slot >= 0) run(make(slot));
  };
  els.zero.addEventListener('click', onSlot((j) => `${j}=zero`));
  els.flip.addEventListener('click', onSlot((j) => `${j}=flip:${els.column.value}`));
  els.replace.addEventListener('click', onSlot((j) => `${j}=from:${els.from.value.trim()}`));
  els.column.addEventListener('change', describeFlip);
  els.from.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      els.replace.click();
    }
  });

  return {
    // The controls show at a thought that can be edited (the view's `edits`); the flip only where
    // its stage ships probes (the columns the probes cover), with what its measurements say. At a
    // thought that cannot be edited, a note says why.
    show(view, pos) {
      const slot = thoughtAt({ view, pos });
      const editable = slot >= 0 && slot < (view.edits?.slots ?? 0);
      els.box.hidden = !editable;
      els.none.hidden = slot < 0 || editable;
      els.none.textContent = slot >= 0 && !editable ? (view.edits?.why_not ?? '') : '';
      if (!editable) return;
      const columns = [...new Set((view.positions[pos]?.probes ?? []).filter((r) => r.quantity === 'carry').map((r) => r.column))];
      els.flip.disabled = columns.length === 0;
      els.column.disabled = columns.length === 0;
      if (els.column.options.length !== columns.length) {
        els.column.replaceChildren(...columns.map((c) => new Option(String(c), String(c))));
      }
      if (columns.length > 0) describeFlip();
      else els.flipNote.textContent = '';
    },
    clear,
    run,
  };
}
