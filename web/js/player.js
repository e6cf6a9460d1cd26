// The token timeline and the stack animation. The model runs one position at a time: the input
// enters the bottom of the stack, rises through every block, and the final hidden state at the top
// either picks the next token (a written step) or, at a continuous thought, is itself the next
// position's input. `cursor` runs from 0 to the number of positions; its fraction is how far the
// current position has risen.

import { heatColor, scaleOf } from './colors.js';

const KIND_LABEL = {
  question: 'question', bot: 'begin thinking', thought: 'continuous thought', step: 'written step',
  eot: 'end of thinking', answer: 'answer', eos: 'end',
};

export class Player {
  constructor(els, onSelect) {
    this.els = els;
    this.onSelect = onSelect;
    this.view = null;
    this.cursor = 0;
    this.playing = false;
    this.selected = -1;
    this.lastFrame = 0;
    els.play.addEventListener('click', () => this.toggle());
    els.stepBack.addEventListener('click', () => this.step(-1));
    els.stepForward.addEventListener('click', () => this.step(1));
    els.scrub.addEventListener('input', () => this.seek(Number(els.scrub.value)));
    els.timeline.addEventListener('click', (e) => {
      const tok = e.target.closest('.tok');
      if (tok && this.view) this.seek(Number(tok.dataset.pos));
    });
    new ResizeObserver(() => this.draw()).observe(els.stack);
  }

  count() {
    return this.view ? this.view.positions.length : 0;
  }

  // Every token can be selected; the last one was only predicted (by the position before it).
  tokenCount() {
    return this.view ? this.view.tokens.length : 0;
  }

  // Shows a new solve: from the start when `animate`, else fully computed with the last
  // position selected.
  show(view, animate) {
    this.pause();
    this.view = view;
    this.renderTimeline();
    this.els.scrub.max = String(Math.max(this.tokenCount() - 1, 0));
    this.selected = -1;
    if (animate && this.count() > 0) {
      this.cursor = 0;
      this.play();
    } else {
      this.seek(this.tokenCount() - 1);
    }
  }

  // The cursor's position: the one rising through the stack, or, once every position has run,
  // the final token.
  selectedPos() {
    if (this.cursor >= this.count()) return Math.max(this.tokenCount() - 1, 0);
    return Math.min(Math.max(Math.ceil(this.cursor) - 1, 0), Math.max(this.count() - 1, 0));
  }

  seek(pos) {
    if (!this.view) return;
    this.pause();
    const p = Math.min(Math.max(pos, 0), this.tokenCount() - 1);
    // The final token is selected with every position run; any other with itself just run.
    this.cursor = p >= this.count() ? this.count() : p + 1 - 1e-9;
    this.update();
  }

  step(delta) {
    if (!this.view) return;
    this.seek(this.selectedPos() + delta);
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  play() {
    if (!this.view || this.count() === 0) return;
    if (this.cursor >= this.count()) this.cursor = 0;
    this.playing = true;
    this.els.play.setAttribute('aria-pressed', 'true');
    this.els.play.textContent = '⏸ Pause';
    this.lastFrame = performance.now();
    requestAnimationFrame((t) => this.frame(t));
  }

  pause() {
    this.playing = false;
    this.els.play.setAttribute('aria-pressed', 'false');
    this.els.play.textContent = '▶ Play';
  }

  frame(now) {
    if (!this.playing) return;
    const dt = Math.min(now - this.lastFrame, 100) / 1000;
    this.lastFrame = now;
    // Thoughts play slower: they are what the page is about.
    const pos = Math.min(Math.floor(this.cursor), this.count() - 1);
    const slow = this.view.tokens[pos]?.kind === 'thought' ? 0.45 : 1;
    this.cursor += dt * 1.5 * Number(this.els.speed.value) * slow;
    if (this.cursor >= this.count()) {
      this.cursor = this.count();
      this.pause();
    }
    this.update();
    if (this.playing) requestAnimationFrame((t) => this.frame(t));
  }

  update() {
    const pos = this.selectedPos();
    this.els.scrub.value = String(pos);
    const tok = this.view.tokens[pos];
    this.els.position.dataset.pos = String(pos);
    const predictedOnly = pos >= this.count() ? ', predicted, never run' : '';
    this.els.position.textContent = `position ${pos + 1} of ${this.tokenCount()}: ${tok.text} (${KIND_LABEL[tok.kind]}${predictedOnly})`;
    for (const el of this.els.timeline.children) {
      const i = Number(el.dataset.pos);
      el.classList.toggle('pending', i > pos + 1 && el.dataset.kind !== 'question');
      el.classList.toggle('current', i === pos);
    }
    if (pos !== this.selected) {
      this.selected = pos;
      this.onSelect(pos);
    }
    this.draw();
  }

  renderTimeline() {
    const tl = this.els.timeline;
    tl.replaceChildren();
    this.view.tokens.forEach((t, i) => {
      const el = document.createElement('span');
      el.className = 'tok';
      el.setAttribute('role', 'listitem');
      el.dataset.kind = t.kind;
      el.dataset.pos = String(i);
      el.textContent = t.kind === 'thought' ? `T${this.thoughtIndex(i) + 1}` : t.text;
      el.title = `${KIND_LABEL[t.kind]} at position ${i + 1}`;
      tl.append(el);
    });
  }

  thoughtIndex(i) {
    return this.view.tokens.slice(0, i).filter((t) => t.kind === 'thought').length;
  }

  // The stack: one column per position, rows from the input (bottom) through each block to the
  // final hidden state (top); each cell is the vector there as a heat strip.
  draw() {
    const canvas = this.els.stack;
    const ctx = canvas.getContext('2d');
    const width = canvas.clientWidth || 600;
    const dpr = window.devicePixelRatio || 1;
    const height = canvas.clientHeight || 260;
    if (canvas.width !== Math.round(width * dpr)) canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (!this.view || this.count() === 0) return;
    const positions = this.view.positions;
    const n = positions.length;
    const rows = positions[0].layers.length + 2;
    const top = 22;
    const bottom = 22;
    const colW = width / n;
    const rowH = (height - top - bottom) / rows;
    const scale = scaleOf(positions.map((p) => p.hidden));
    const full = Math.floor(this.cursor);
    const frac = this.cursor - full;
    const fontSize = Math.max(9, Math.min(14, colW * 0.8));
    ctx.font = `${fontSize}px system-ui, sans-serif`;
    ctx.textAlign = 'center';
    for (let p = 0; p < n; p++) {
      const shownRows = p < full ? rows : p === full ? Math.floor(frac * (rows + 1)) : 0;
      const x = p * colW;
      const kind = this.view.tokens[p].kind;
      const vectors = [positions[p].input, ...positions[p].layers, positions[p].hidden];
      for (let r = 0; r < shownRows; r++) {
        const y = height - bottom - (r + 1) * rowH;
        drawStrip(ctx, vectors[r], r === rows - 1 ? scale : scaleOf([vectors[r]]), x + 1, y + 1, colW - 2, rowH - 2);
      }
      if (p === this.selected) {
        ctx.strokeStyle = '#111';
        ctx.lineWidth = 2;
        ctx.strokeRect(x + 0.5, top - 2, colW - 1, height - top - bottom + 4);
      }
      ctx.fillStyle = kind === 'thought' ? '#c2410c' : '#333';
      if (shownRows > 0 && colW >= 9) {
        ctx.fillText(kind === 'thought' ? 'h' : this.view.tokens[p].text.replace(/^<(.+)>$/, '$1').slice(0, 3), x + colW / 2, height - 6);
      }
      // The token this position wrote (greedy), once it is through the stack; the question's
      // next tokens are given, not predicted, and a thought's input is no token.
      const next = this.view.tokens[p + 1];
      const generated = next && !['question', 'bot', 'thought'].includes(next.kind);
      if (shownRows === rows && generated && colW >= 9) {
        ctx.fillStyle = '#333';
        ctx.fillText(next.text.replace(/^<(.+)>$/, '$1').slice(0, 3), x + colW / 2, 15);
      }
    }
    // The thought loops: top of position s-1 into the bottom of thought slot s.
    for (let s = 1; s < n; s++) {
      if (this.view.tokens[s].kind !== 'thought' || s - 1 >= full + (frac > 0.9 ? 1 : 0)) continue;
      const x0 = (s - 1) * colW + colW / 2;
      const x1 = s * colW + colW / 2;
      const y0 = top;
      const y1 = height - bottom;
      const travelling = s === full && this.playing ? Math.min(frac * 3, 1) : 1;
      drawLoop(ctx, x0, y0, x1, y1, colW, travelling);
    }
  }
}

function drawStrip(ctx, vector, scale, x, y, w, h) {
  const n = vector.length;
  const cells = Math.max(1, Math.min(n, Math.floor(w)));
  const per = n / cells;
  for (let i = 0; i < cells; i++) {
    let sum = 0;
    const from = Math.floor(i * per);
    const to = Math.max(from + 1, Math.floor((i + 1) * per));
    for (let j = from; j < to; j++) sum += vector[j];
    ctx.fillStyle = heatColor(sum / (to - from) / scale);
    ctx.fillRect(x + (i * w) / cells, y, w / cells + 0.5, h);
  }
}

// A loop leaving the top of one column and entering the bottom of the next, drawn up to
// `progress` (0..1) with a dot where the thought currently is.
function drawLoop(ctx, x0, y0, x1, y1, colW, progress) {
  const out = Math.max(colW * 0.45, 6);
  const path = [
    [x0, y0], [x0 + out, y0 - 12], [x1 - out, y1 + 14], [x1, y1],
  ];
  const point = (t) => {
    const u = 1 - t;
    const [a, b, c, d] = path;
    return [
      u * u * u * a[0] + 3 * u * u * t * b[0] + 3 * u * t * t * c[0] + t * t * t * d[0],
      u * u * u * a[1] + 3 * u * u * t * b[1] + 3 * u * t * t * c[1] + t * t * t * d[1],
    ];
  };
  ctx.strokeStyle = '#ea580c';
  ctx.lineWidth = 2.5;
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  const steps = 24;
  for (let i = 1; i <= steps * progress; i++) ctx.lineTo(...point(i / steps));
  ctx.stroke();
  const [px, py] = point(progress);
  ctx.fillStyle = '#ea580c';
  ctx.beginPath();
  ctx.arc(px, py, 4, 0, 2 * Math.PI);
  ctx.fill();
}
