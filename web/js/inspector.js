// Inside one position: its final hidden state as a heat strip, the LM head on it (top-k), its
// similarity to the digit embeddings and the attention of every layer and head.

import { heatColor, scaleOf } from './colors.js';
import { KIND_LABEL } from './player.js';

// Empties the inspector (no problem on screen).
export function clearInspector(els) {
  els.title.textContent = 'Inside the selected position';
  for (const key of ['topk', 'topkNote', 'similarity', 'simNote', 'attention', 'probes', 'probesNote']) els[key].replaceChildren();
  els.probesBox.hidden = true;
  const ctx = els.heatStrip.getContext('2d');
  ctx.clearRect(0, 0, els.heatStrip.width, els.heatStrip.height);
}

// `pos` may be the final token, which was predicted but never run: the inspector then shows the
// position that predicted it.
export function renderInspector(els, view, selected, name) {
  const pos = Math.min(selected, view.positions.length - 1);
  const p = view.positions[pos];
  if (!p) return;
  const tok = view.tokens[pos];
  const next = view.tokens[pos + 1];
  const what = `${name(pos)}, ${KIND_LABEL[tok.kind]}`;
  els.title.textContent = selected > pos
    ? `Inside position ${pos + 1} (${what}), which predicted the last token ${name(selected)}, never run itself`
    : `Inside position ${pos + 1} (${what})`;
  els.width.textContent = String(p.hidden.length);
  drawHeatStrip(els.heatStrip, p.hidden);

  const fedBack = next && next.kind === 'thought';
  els.topk.replaceChildren(
    ...p.top.map((c) => {
      const li = document.createElement('li');
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${Math.max(c.p * 100, 0.5)}%`;
      const label = document.createElement('span');
      label.className = 'bar-label';
      label.textContent = `${c.token}  ${(c.p * 100).toFixed(1)}%`;
      li.append(bar, label);
      return li;
    }),
  );
  els.topk.dataset.fedBack = String(fedBack);
  // Said on the page, not in a tooltip: touch screens show no tooltips.
  if (fedBack) {
    els.topkNote.textContent = `Not decoded: this state is fed back as the next thought. The list is what the LM head
      would write if it were forced to read it. The head was trained only on written tokens, so it may or may not say
      what the thought holds: a thought that reads as <eot> still changes the answer that follows.`;
  } else if (next && next.kind === 'pause') {
    els.topkNote.textContent = 'Not decoded: the next position is a pause, which takes the fixed <latent> embedding whatever this state says.';
  } else if (next && (next.kind === 'question' || next.kind === 'bot')) {
    els.topkNote.textContent = `Not decoded: the next token, ${next.text}, is part of the question, given, not predicted.`;
  } else if (next) {
    els.topkNote.textContent = `Greedy decoding: the most probable token, ${next.text}, is written next.`;
  } else {
    els.topkNote.textContent = '';
  }

  // The closest digit is bold only when it stands out: positive and clearly above the next.
  const order = p.digits.map((v, d) => [v, d]).sort((x, y) => y[0] - x[0]);
  const standsOut = order[0][0] >= 0.2 && order[0][0] - order[1][0] >= 0.05;
  const best = standsOut ? order[0][1] : -1;
  els.similarity.replaceChildren(
    ...p.digits.map((s, d) => {
      const row = document.createElement('div');
      row.className = 'sim-row' + (d === best ? ' best' : '');
      const label = document.createElement('span');
      label.textContent = String(d);
      const track = document.createElement('span');
      track.className = 'sim-track';
      const bar = document.createElement('span');
      bar.className = 'sim-bar';
      bar.style.left = s >= 0 ? '50%' : `${50 + s * 50}%`;
      bar.style.width = `${Math.abs(s) * 50}%`;
      bar.style.background = s >= 0 ? '#c2410c' : '#2563eb';
      track.append(bar);
      const value = document.createElement('span');
      value.textContent = s.toFixed(2);
      row.append(label, track, value);
      return row;
    }),
  );
  els.simNote.textContent = standsOut
    ? `Closest to the embedding of ${best} (cosine ${order[0][0].toFixed(2)}).`
    : `No digit stands out (the highest cosine is ${order[0][0].toFixed(2)}, for ${order[0][1]}).`;

  renderProbes(els, selected > pos ? [] : p.probes, view);
  renderAttention(els.attention, view, pos, name);
}

const COLUMN_NAMES = ['ones', 'tens', 'hundreds', 'thousands', 'ten thousands'];

// What the stage's probes read from the thought fed in at this position: per column of the sum,
// the digit it writes and whether it carries, each with the probe's held-out accuracy where it
// was measured for problems of this length (view.probed: scored on 1 to `digits` digits). A probe
// within 20 points of its shuffled-label baseline reads little more than chance: drawn in grey italics.
function renderProbes(els, readings, view) {
  els.probesBox.hidden = readings.length === 0;
  if (readings.length === 0) return;
  const columns = [...new Set(readings.map((r) => r.column))].sort((a, b) => a - b);
  const cell = (r) => {
    const td = document.createElement('td');
    if (!r) return td;
    td.textContent = r.quantity === 'carry' ? (r.value ? 'yes' : 'no') : String(r.value);
    td.dataset.value = String(r.value);
    if (r.accuracy === null || r.accuracy === undefined) {
      td.className = 'unmeasured';
      return td;
    }
    const acc = document.createElement('small');
    acc.textContent = ` ${r.accuracy.toFixed(0)}%`;
    td.append(acc);
    if (r.accuracy - r.shuffled < 20) td.className = 'weak';
    return td;
  };
  els.probes.replaceChildren(
    ...columns.map((c) => {
      const tr = document.createElement('tr');
      const th = document.createElement('th');
      th.textContent = `${c} (${COLUMN_NAMES[c] ?? `10^${c}`})`;
      const find = (q) => readings.find((r) => r.column === c && r.quantity === q);
      tr.append(th, cell(find('digit')), cell(find('carry')));
      return tr;
    }),
  );
  const probed = view.probed;
  const fitted = `Each answer is a linear classifier (a probe) applied to the thought fed in here, fitted on the
    thoughts of ${probed.n_fit.toLocaleString('en')} training problems of 1 to ${probed.digits} digits`;
  const digits = Math.max(String(view.a).length, String(view.b).length);
  els.probesNote.dataset.measured = String(probed.measured_here);
  els.probesNote.textContent = probed.measured_here
    ? `${fitted}; the percentage is how often it is right on ${probed.n_test.toLocaleString('en')} held-out problems
      of those lengths. In grey italics: within 20 points of the same probe fitted to shuffled labels (chance).`
    : `${fitted}. Not measured for this length: how often they are right on ${digits}-digit problems was never
      measured, so these readings may be wrong.`;
}

function drawHeatStrip(canvas, vector) {
  const width = canvas.clientWidth || 400;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round((canvas.clientHeight || 36) * dpr);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const scale = scaleOf([vector]);
  const w = width / vector.length;
  vector.forEach((v, i) => {
    ctx.fillStyle = heatColor(v / scale);
    ctx.fillRect(i * w, 0, w + 0.5, canvas.clientHeight || 36);
  });
}

// One heat map per layer and head: row q is what position q attended to (causal, so the
// upper triangle is empty). Rows only up to the selected position are known to the viewer yet.
function renderAttention(container, view, pos, name) {
  const layers = view.positions[0].attention.length;
  const heads = view.positions[0].attention[0].length;
  const n = pos + 1;
  if (container.children.length !== layers * heads) {
    container.replaceChildren();
    container.style.setProperty('--heads', String(heads));
    for (let l = 0; l < layers; l++) {
      for (let h = 0; h < heads; h++) {
        const fig = document.createElement('figure');
        const canvas = document.createElement('canvas');
        canvas.setAttribute('aria-label', `layer ${l + 1} head ${h + 1}`);
        const cap = document.createElement('figcaption');
        fig.append(canvas, cap);
        container.append(fig);
      }
    }
  }
  const figures = container.querySelectorAll('canvas');
  for (let l = 0; l < layers; l++) {
    for (let h = 0; h < heads; h++) {
      const canvas = figures[l * heads + h];
      // The map's cells are too small for token labels; the caption names what the selected
      // position attends to most.
      const weights = view.positions[pos].attention[l][h];
      const most = weights.reduce((bi, w, i, a) => (w > a[bi] ? i : bi), 0);
      canvas.closest('figure').querySelector('figcaption').textContent =
        `layer ${l + 1}, head ${h + 1}: mostly position ${most + 1}, ${name(most)} (${Math.round(weights[most] * 100)}%)`;
      const size = canvas.clientWidth || 140;
      const dpr = window.devicePixelRatio || 1;
      canvas.width = Math.round(size * dpr);
      canvas.height = Math.round(size * dpr);
      const ctx = canvas.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.fillStyle = '#fafafa';
      ctx.fillRect(0, 0, size, size);
      const cell = size / n;
      for (let q = 0; q < n; q++) {
        const row = view.positions[q].attention[l][h];
        for (let k = 0; k <= q; k++) {
          const w = row[k];
          const shade = Math.round(255 * (1 - Math.sqrt(w)));
          ctx.fillStyle = view.tokens[k].kind === 'thought' ? `rgb(255,${shade},${Math.round(shade * 0.6)})` : `rgb(${shade},${shade},${shade})`;
          ctx.fillRect(k * cell, q * cell, cell + 0.3, cell + 0.3);
        }
      }
      ctx.strokeStyle = '#c2410c';
      ctx.lineWidth = 1.5;
      ctx.strokeRect(0.75, pos * cell + 0.75, size - 1.5, cell - 1.5);
    }
  }
}
