// The token timeline and the stack animation. The model runs one position at a time: the input
// enters the bottom of the stack, rises through every block, and the final hidden state at the top
// either picks the next token (a written step) or, at a continuous thought, is itself the next
// position's input. A pause position (the pause baseline) takes a fixed embedding instead: it is
// drawn grey, with no loop. `cursor` runs from 0 to the number of positions; its fraction is how
// far the current position has risen.

import { heatColor, scaleOf } from './colors.js';

export const KIND_LABEL = {
  question: 'question', bot: 'begin thinking', thought: 'continuous thought', pause: 'pause position',
  step: 'written step', eot: 'end of thinking', answer: 'answer', eos: 'end',
};

const THOUGHT = '#c2410c';
const PAUSE = '#6e7781';
const reducedMotion = window.matchMedia?.('(prefers-reduced-motion: reduce)');

export class Player {
  constructor(els, onSelect) {
    this.els = els;
    this.onSelect = onSelect;
    this.view = null;
    this.cursor = 0;
    this.playing = false;
    this.selected = -1;
    this.lastFrame = 0;
    this.columns = null; // where the last drawing put each position: { left, width }
    els.play.addEventListener('click', () => this.toggle());
    els.stepBack.addEventListener('click', () => this.step(-1));
    els.stepForward.addEventListener('click', () => this.step(1));
    els.scrub.addEventListener('input', () => this.seek(Number(els.scrub.value)));
    els.speed.addEventListener('input', () => this.describeSpeed());
    this.describeSpeed();
    els.timeline.addEventListener('click', (e) => {
      const tok = e.target.closest('.tok');
      if (tok && this.view) this.seek(Number(tok.dataset.pos));
    });
    els.stack.addEventListener('click', (e) => {
      if (!this.view || !this.columns) return;
      const x = e.clientX - els.stack.getBoundingClientRect().left;
      const { left, width } = this.columns;
      const p = Math.floor((x - left) / width);
      if (p >= 0 && p < this.count()) this.seek(p);
    });
    new ResizeObserver(() => this.draw()).observe(els.stack);
  }

  static reducedMotion() {
    return Boolean(reducedMotion?.matches);
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
    this.els.scrub.disabled = false;
    this.selected = -1;
    if (animate && this.count() > 0) {
      this.cursor = 0;
      this.play();
    } else {
      this.seek(this.tokenCount() - 1);
    }
  }

  // Nothing shown: after a refused input the last problem must not keep playing.
  clear() {
    this.pause();
    this.view = null;
    this.cursor = 0;
    this.selected = -1;
    this.els.timeline.replaceChildren();
    this.els.scrub.max = '0';
    this.els.scrub.value = '0';
    this.els.scrub.disabled = true;
    this.els.scrub.removeAttribute('aria-valuetext');
    this.els.position.textContent = '';
    this.els.position.dataset.pos = '';
    this.draw();
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
    setLabel(this.els.play, 'pause', 'Pause');
    this.lastFrame = performance.now();
    requestAnimationFrame((t) => this.frame(t));
  }

  pause() {
    this.playing = false;
    this.els.play.setAttribute('aria-pressed', 'false');
    setLabel(this.els.play, 'play', 'Play');
  }

  frame(now) {
    if (!this.playing) return;
    const speed = Number(this.els.speed.value);
    if (Player.reducedMotion()) {
      // No rising motion: one whole position at a time.
      if (now - this.lastFrame < 700 / speed) {
        requestAnimationFrame((t) => this.frame(t));
        return;
      }
      this.lastFrame = now;
      this.cursor = Math.floor(this.cursor + 1e-6) + 1;
    } else {
      const dt = Math.min(now - this.lastFrame, 100) / 1000;
      this.lastFrame = now;
      // Thoughts play slower: they are what the page is about.
      const pos = Math.min(Math.floor(this.cursor), this.count() - 1);
      const slow = this.view.tokens[pos]?.kind === 'thought' ? 0.45 : 1;
      this.cursor += dt * 1.5 * speed * slow;
    }
    if (this.cursor >= this.count()) {
      this.cursor = this.count();
      this.pause();
    }
    this.update();
    if (this.playing) requestAnimationFrame((t) => this.frame(t));
  }

  describeSpeed() {
    this.els.speed.setAttribute('aria-valuetext', `${Number(this.els.speed.value)} times normal speed`);
  }

  update() {
    const pos = this.selectedPos();
    this.els.scrub.value = String(pos);
    const tok = this.view.tokens[pos];
    const predictedOnly = pos >= this.count() ? ', predicted, never run' : '';
    const where = `position ${pos + 1} of ${this.tokenCount()}: ${this.tokenName(pos)} (${KIND_LABEL[tok.kind]}${predictedOnly})`;
    this.els.position.dataset.pos = String(pos);
    this.els.position.textContent = where;
    this.els.scrub.setAttribute('aria-valuetext', where);
    const focusInside = this.els.timeline.contains(document.activeElement);
    for (const el of this.els.timeline.children) {
      const i = Number(el.dataset.pos);
      el.classList.toggle('pending', i > pos + 1 && el.dataset.kind !== 'question');
      el.classList.toggle('current', i === pos);
      el.setAttribute('aria-selected', String(i === pos));
      el.tabIndex = i === pos ? 0 : -1;
      if (i === pos && focusInside && document.activeElement !== el) el.focus();
    }
    if (pos !== this.selected) {
      this.selected = pos;
      this.onSelect(pos);
    }
    this.draw();
  }

  // How a token reads in text: thoughts and pauses by their number, the rest as written.
  tokenName(i) {
    const t = this.view.tokens[i];
    if (t.kind === 'thought') return `thought ${this.slotIndex(i) + 1}`;
    if (t.kind === 'pause') return `pause ${this.slotIndex(i) + 1}`;
    return `"${t.text}"`;
  }

  renderTimeline() {
    const tl = this.els.timeline;
    tl.replaceChildren();
    this.view.tokens.forEach((t, i) => {
      const el = document.createElement('span');
      el.className = 'tok';
      el.setAttribute('role', 'option');
      el.setAttribute('aria-selected', 'false');
      el.tabIndex = -1;
      el.dataset.kind = t.kind;
      el.dataset.pos = String(i);
      const label = document.createElement('span');
      label.textContent = this.shortLabel(i);
      el.append(label);
      // The accessible name starts with the visible label (WCAG 2.5.3).
      el.setAttribute('aria-label', `${label.textContent}: ${KIND_LABEL[t.kind]} at position ${i + 1}`);
      el.title = `${KIND_LABEL[t.kind]} at position ${i + 1}`;
      tl.append(el);
    });
  }

  // T1, T2… for thoughts, P1, P2… for pauses, else the token itself.
  shortLabel(i) {
    const t = this.view.tokens[i];
    if (t.kind === 'thought') return `T${this.slotIndex(i) + 1}`;
    if (t.kind === 'pause') return `P${this.slotIndex(i) + 1}`;
    return t.text;
  }

  slotIndex(i) {
    const kind = this.view.tokens[i].kind;
    return this.view.tokens.slice(0, i).filter((t) => t.kind === kind).length;
  }

  // The stack: one column per position, rows from the input (bottom) through each block to the
  // final hidden state (top), labelled in a left gutter; each cell is the vector there as a heat
  // strip. Text is sized from the page's font, so projector mode scales it too.
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
    canvas.dataset.loops = '0';
    this.columns = null;
    if (!this.view || this.count() === 0) return;
    const positions = this.view.positions;
    const n = positions.length;
    const layers = positions[0].layers.length;
    const rows = layers + 2;
    const fontSize = Math.round(parseFloat(getComputedStyle(canvas).fontSize || '16') * 0.8);
    const font = `${fontSize}px system-ui, sans-serif`;
    ctx.font = font;

    // Row labels: full words when there is room, short ones on a phone.
    const long = ['input', ...Array.from({ length: layers }, (_, l) => `block ${l + 1}`), 'final'];
    const short = ['in', ...Array.from({ length: layers }, (_, l) => `b${l + 1}`), 'out'];
    const rowLabels = width >= 480 ? long : short;
    const gutter = Math.ceil(Math.max(...rowLabels.map((t) => ctx.measureText(t).width))) + 10;
    const colW = (width - gutter) / n;

    // Column labels: the input token under each column, the written token above it. Horizontal
    // when every label fits its column, else turned upright; left out when columns are thinner
    // than the text (the timeline above names every token).
    const below = Array.from({ length: n }, (_, p) => this.shortLabel(p).replace(/^<(.+)>$/, '$1'));
    const above = Array.from({ length: n }, (_, p) => {
      const next = this.view.tokens[p + 1];
      const generated = next && !['question', 'bot', 'thought', 'pause'].includes(next.kind);
      return generated ? next.text.replace(/^<(.+)>$/, '$1') : '';
    });
    const widest = Math.max(...[...below, ...above].map((t) => ctx.measureText(t).width));
    const labels = colW >= fontSize * 0.9;
    const upright = labels && widest > colW - 2;
    const band = !labels ? 6 : upright ? Math.min(Math.ceil(widest) + 8, height * 0.22) : fontSize + 8;
    const top = band;
    const bottom = band;
    const rowH = (height - top - bottom) / rows;
    this.columns = { left: gutter, width: colW };

    ctx.fillStyle = '#3d444d';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    rowLabels.forEach((t, r) => ctx.fillText(t, gutter - 6, height - bottom - (r + 0.5) * rowH));

    const scale = scaleOf(positions.map((p) => p.hidden));
    const full = Math.floor(this.cursor);
    const frac = this.cursor - full;
    for (let p = 0; p < n; p++) {
      const shownRows = p < full ? rows : p === full ? Math.floor(frac * (rows + 1)) : 0;
      const x = gutter + p * colW;
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
      if (!labels) continue;
      if (shownRows > 0) {
        ctx.fillStyle = kind === 'thought' ? THOUGHT : kind === 'pause' ? PAUSE : '#24292f';
        drawLabel(ctx, below[p], x + colW / 2, height - bottom + 4, upright, 'down');
      }
      if (shownRows === rows && above[p]) {
        ctx.fillStyle = '#24292f';
        drawLabel(ctx, above[p], x + colW / 2, top - 4, upright, 'up');
      }
    }
    // The thought loops: top of position s-1 into the bottom of thought slot s. Pause slots
    // take no hidden state, so they get none.
    let loops = 0;
    for (let s = 1; s < n; s++) {
      if (this.view.tokens[s].kind !== 'thought' || s - 1 >= full + (frac > 0.9 ? 1 : 0)) continue;
      const x0 = gutter + (s - 1) * colW + colW / 2;
      const x1 = gutter + s * colW + colW / 2;
      const travelling = s === full && this.playing && !Player.reducedMotion() ? Math.min(frac * 3, 1) : 1;
      drawLoop(ctx, x0, top, x1, height - bottom, colW, travelling);
      loops++;
    }
    canvas.dataset.loops = String(loops);
    ctx.font = font;
  }
}

// A button's icon (drawn by style.css, so it needs no emoji font) and word.
function setLabel(button, icon, word) {
  const span = document.createElement('span');
  span.className = `icon ${icon}`;
  span.setAttribute('aria-hidden', 'true');
  button.replaceChildren(span, ` ${word}`);
}

// A label centred on x, next to y: horizontal, or upright reading bottom to top, extending
// away from the stack ('down' below it, 'up' above it).
function drawLabel(ctx, text, x, y, upright, direction) {
  ctx.save();
  if (upright) {
    ctx.translate(x, y);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = direction === 'down' ? 'right' : 'left';
    ctx.textBaseline = 'middle';
    ctx.fillText(text, 0, 0);
  } else {
    ctx.textAlign = 'center';
    ctx.textBaseline = direction === 'down' ? 'top' : 'bottom';
    ctx.fillText(text, x, y);
  }
  ctx.restore();
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
  ctx.strokeStyle = THOUGHT;
  ctx.lineWidth = 2.5;
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  const steps = 24;
  for (let i = 1; i <= steps * progress; i++) ctx.lineTo(...point(i / steps));
  ctx.stroke();
  const [px, py] = point(progress);
  ctx.fillStyle = THOUGHT;
  ctx.beginPath();
  ctx.arc(px, py, 4, 0, 2 * Math.PI);
  ctx.fill();
}
