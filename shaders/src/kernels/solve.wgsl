// The whole decoding of one problem in one workgroup: embedding, every block, ln_f, the fed-back
// thought, the tied LM head, argmax and the next token, position after position until `<eos>` or
// the model's last position (core's DecodePlan stop rule). A dispatch of N workgroups decodes N
// problems; nothing returns to the host until all are done.
//
// Position ids follow core's PositionTable: the host gives the ids of the prompt and thought
// slots, and for the generated tail an automaton over token classes (per state, per class: the
// next state and the token's id), so absolute and coupled ids (ahead or not) run alike and the
// kernel never restates how a column is counted. An id past the position table stops the
// problem with a flag, where the reference engine refuses the sequence as too long.
//
// A dispatch runs at most `run.steps` positions per problem and leaves the problem's state in
// storage (next position, whether it runs, the last final hidden state), so the host may split
// a decoding into several dispatches of one submission: llvmpipe (lavapipe) ends every loop of
// an invocation once the invocation has made 65,535 loop iterations in all, which one whole
// decoding of the 4-layer model exceeds. Elsewhere one dispatch runs every position.
//
// The host prepends common.wgsl, attention_terms.wgsl and a header of constants: C (width), H (heads), D = C / H,
// V (vocabulary), VQ = ceil(V / 4), L (blocks), P (positions), FF (MLP width), WG (invocations),
// INT8, SCALE = 1/sqrt(D), EPS, EOS_ID, NT (tensors), BUF = 4C + max(3C, FF), KV = 2LPC + C
// (floats of a problem in `kv`).
//
// Every sum runs in the order of the reference engine and of the one-kernel-per-layer path
// (matvec.wgsl, attention.wgsl, layernorm.wgsl, lm_head.wgsl, argmax.wgsl), so the two GPU
// paths and the oracle round alike. Attention's two sums are the per-layer kernel's own
// functions (attention_terms.wgsl); the others are written here as there, over workgroup
// memory, which a WGSL function cannot take a pointer to without a language extension:
//   LayerNorm  y = (x - mean) * (1 / sqrt(var + EPS)) * g + b, mean and var folded in index order
//   linear     y[j] = b[j] + sum_i x[i] W[i, j] in increasing i (then GELU, or added to x)
//   attention  a = softmax(q.k[s] * SCALE) over s <= t, out = sum_s a[s] v[s], in increasing s
//   LM head    logits[v] = sum_c wte[v, c] h[c] in increasing c; argmax, ties to the lowest id
//
// Workgroup memory `buf` holds the position's vectors: X (residual), XN (normalised), HID (ln_f
// output: the LM head's input and the next thought), AO (attention output), WIDE (qkv or MLP).

struct Run {
    // Problems in this dispatch.
    n: u32,
    // 1: a thought's input is the previous position's final hidden state; 0: its token
    // (`<latent>`, the pause baseline).
    feeds_back: u32,
    // 1: also write the trace of problem 0 (residuals, attention weights, logits).
    trace: u32,
    // Thought rows reserved per problem in `out`.
    thoughts_max: u32,
    // L, read at run time: with a constant bound some compilers unroll the blocks, every
    // loop inside them with them, and fail on the code size without an error (lavapipe at
    // C = 128, L = 4).
    layers: u32,
    // Positions a problem runs in this dispatch at most.
    steps: u32,
    pad0: u32,
    pad1: u32,
    // Per tensor, in the skeleton's order: (start in `words` or `floats`, start of its scales).
    offsets: array<vec4<u32>, NT>,
    // Per token id (four to a vec4): its class for the position automaton (core's TailClass:
    // 0 `<eot>`, 1 `<sep>`, 2 a digit, 3 anything else).
    classes: array<vec4<u32>, VQ>,
}

@group(0) @binding(1) var<storage, read> run: Run;
@group(0) @binding(2) var<storage, read> words: array<u32>;
@group(0) @binding(3) var<storage, read> floats: array<f32>;
// Per problem four words (prompt length, thoughts, where its fixed ids start, where its automaton
// starts), then each problem's fixed ids (one per prompt and thought position) and automaton
// (per state, per class: next state, position id).
@group(0) @binding(4) var<storage, read> metas: array<u32>;
// Per problem P + 1 ids: the prompt and `<latent>` slots from the host, then the generated ids.
@group(0) @binding(5) var<storage, read_write> ids: array<u32>;
// Per problem: keys then values of every position of each block, [L][2][P][C], then the last
// final hidden state [C] (a thought's input when a dispatch ends before it).
@group(0) @binding(6) var<storage, read_write> kv: array<f32>;
// Thoughts [N][thoughts_max][C], then problem 0's trace when asked (trace.rs's layout, P rows):
// logits [P][V], residual after each block [L][P][C], attention weights [L][H][P][P].
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
// Per problem two vec4s: (next position, 1 while it runs, ids written, 1 if the last is <eos>),
// (automaton state, 1 if a position id fell past the table, 0, 0); the host starts them at
// (0, 1, 0, 0), (0, 0, 0, 0).
@group(0) @binding(8) var<storage, read_write> state: array<vec4<u32>>;

const WTE: u32 = 0u;
const WPE: u32 = 1u;
const X: u32 = 0u;
const XN: u32 = C;
const HID: u32 = 2u * C;
const AO: u32 = 3u * C;
const WIDE: u32 = 4u * C;
const NONE: u32 = 0xffffffffu;

var<workgroup> buf: array<f32, BUF>;
var<workgroup> scores: array<f32, H * P>;
var<workgroup> folds: array<f32, 2 * H>;
var<workgroup> logits: array<f32, V>;
var<workgroup> running: u32;
var<workgroup> written: vec2<u32>;
var<workgroup> too_far: u32;
var<workgroup> position: u32;

// Column c of row `row` of an embedding table (int8 rows with one scale each, or f32).
fn table_value(tensor: u32, row: u32, c: u32) -> f32 {
    let o = run.offsets[tensor];
    let row_words = (C + 3u) / 4u;
    if (INT8) {
        return unpack_i8(words[o.x + row * row_words + c / 4u], c % 4u) * floats[o.y + row];
    }
    return bitcast<f32>(words[o.x + row * row_words * 4u + c]);
}

// W[i, 4j4 .. 4j4+4] of a Conv1D weight [K, N] packed along N (N a multiple of 4).
fn w4(o: vec4<u32>, n4: u32, i: u32, j4: u32, s: vec4<f32>) -> vec4<f32> {
    let k = o.x + i * n4 + j4;
    if (INT8) {
        return unpack_i8x4(words[k]) * s;
    }
    let f = o.x + 4u * (i * n4 + j4);
    return vec4<f32>(
        bitcast<f32>(words[f]),
        bitcast<f32>(words[f + 1u]),
        bitcast<f32>(words[f + 2u]),
        bitcast<f32>(words[f + 3u]),
    );
}

// buf[dst + j] = epilogue(b[j] + sum_{i<k} buf[src + i] W[i, j]) for j < n; mode 0 stores,
// 1 stores GELU, 2 adds to what is there (the residual). `tensor` is W, `tensor + 1` its bias.
fn linear(lid: u32, tensor: u32, k: u32, n: u32, src: u32, dst: u32, mode: u32) {
    let o = run.offsets[tensor];
    let b = run.offsets[tensor + 1u].x;
    let n4 = n / 4u;
    for (var j4 = lid; j4 < n4; j4 += WG) {
        var s = vec4<f32>(1.0);
        if (INT8) {
            s = vec4<f32>(floats[o.y + 4u * j4], floats[o.y + 4u * j4 + 1u],
                          floats[o.y + 4u * j4 + 2u], floats[o.y + 4u * j4 + 3u]);
        }
        var acc = vec4<f32>(floats[b + 4u * j4], floats[b + 4u * j4 + 1u],
                            floats[b + 4u * j4 + 2u], floats[b + 4u * j4 + 3u]);
        // By four, the adds still in increasing i (the plain loop's rounding): a quarter of the
        // loop iterations, which llvmpipe counts (see the top), and faster on it.
        var i = 0u;
        for (; i + 4u <= k; i += 4u) {
            acc += buf[src + i] * w4(o, n4, i, j4, s);
            acc += buf[src + i + 1u] * w4(o, n4, i + 1u, j4, s);
            acc += buf[src + i + 2u] * w4(o, n4, i + 2u, j4, s);
            acc += buf[src + i + 3u] * w4(o, n4, i + 3u, j4, s);
        }
        for (; i < k; i++) {
            acc += buf[src + i] * w4(o, n4, i, j4, s);
        }
        for (var l = 0u; l < 4u; l++) {
            let at = dst + 4u * j4 + l;
            buf[at] = epilogue(mode, buf[at], acc[l]);
        }
    }
    workgroupBarrier();
}

// buf[dst ..] = LayerNorm(buf[src ..]) with gain `tensor` and bias `tensor + 1`.
fn layer_norm(lid: u32, tensor: u32, src: u32, dst: u32) {
    if (lid == 0u) {
        var sum = 0.0;
        for (var c = 0u; c < C; c++) {
            sum += buf[src + c];
        }
        let mean = sum / f32(C);
        var squares = 0.0;
        for (var c = 0u; c < C; c++) {
            let d = buf[src + c] - mean;
            squares += d * d;
        }
        folds[0] = mean;
        folds[1] = 1.0 / sqrt(squares / f32(C) + EPS);
    }
    workgroupBarrier();
    let mean = folds[0];
    let inv = folds[1];
    let g = run.offsets[tensor].x;
    let b = run.offsets[tensor + 1u].x;
    for (var c = lid; c < C; c += WG) {
        buf[dst + c] = (buf[src + c] - mean) * inv * floats[g + c] + floats[b + c];
    }
    workgroupBarrier();
}

// Where attention_terms.wgsl's operands are: the query in WIDE, the softmax weights in `scores`,
// keys and values in the cache of the problem and layer at hand (set by `attention`).
var<private> cached_keys: u32;
var<private> cached_values: u32;

fn query(at: u32) -> f32 {
    return buf[WIDE + at];
}

fn weight(at: u32) -> f32 {
    return scores[at];
}

fn key(s: u32, off: u32) -> f32 {
    return kv[cached_keys + s * C + off];
}

fn value(s: u32, off: u32) -> f32 {
    return kv[cached_values + s * C + off];
}

// Causal attention of position t over the problem's cache of `layer`, qkv in WIDE, output in AO.
fn attention(lid: u32, problem: u32, layer: u32, t: u32) {
    let keys = problem * KV + layer * 2u * P * C;
    let values = keys + P * C;
    cached_keys = keys;
    cached_values = values;
    for (var c = lid; c < C; c += WG) {
        kv[keys + t * C + c] = buf[WIDE + C + c];
        kv[values + t * C + c] = buf[WIDE + 2u * C + c];
    }
    storageBarrier();
    let n = t + 1u;
    for (var i = lid; i < H * n; i += WG) {
        let h = i / n;
        let s = i % n;
        scores[h * P + s] = attention_dot(h * D, s, h * D, D) * SCALE;
    }
    workgroupBarrier();
    if (lid < H) {
        var m = scores[lid * P];
        for (var s = 0u; s < n; s++) {
            m = max(m, scores[lid * P + s]);
        }
        folds[lid] = m;
    }
    workgroupBarrier();
    for (var i = lid; i < H * n; i += WG) {
        let h = i / n;
        scores[h * P + i % n] = exp(scores[h * P + i % n] - folds[h]);
    }
    workgroupBarrier();
    if (lid < H) {
        var sum = 0.0;
        for (var s = 0u; s < n; s++) {
            sum += scores[lid * P + s];
        }
        folds[H + lid] = sum;
    }
    workgroupBarrier();
    for (var i = lid; i < H * n; i += WG) {
        let h = i / n;
        let a = scores[h * P + i % n] / folds[H + h];
        scores[h * P + i % n] = a;
        if (run.trace == 1u && problem == 0u) {
            out[attention_at(layer, h, t) + i % n] = a;
        }
    }
    workgroupBarrier();
    for (var o = lid; o < C; o += WG) {
        buf[AO + o] = attention_mix(o / D * P, n, o);
    }
    workgroupBarrier();
}

// The position-table row of position t, and the automaton's state after it: a fixed id before
// the tail, else the automaton's step on the class of the token at t.
fn position_id(problem: u32, t: u32, state: u32) -> vec2<u32> {
    let n = metas[4u * problem];
    let k = metas[4u * problem + 1u];
    if (t < n + k) {
        return vec2<u32>(state, metas[metas[4u * problem + 2u] + t]);
    }
    let id = min(ids[problem * (P + 1u) + t], V - 1u);
    let token_class = run.classes[id / 4u][id % 4u];
    let at = metas[4u * problem + 3u] + 2u * (4u * state + token_class);
    return vec2<u32>(metas[at], metas[at + 1u]);
}

fn trace_start() -> u32 {
    return run.n * run.thoughts_max * C;
}

// The trace layout of shaders/src/trace.rs with P rows: logits [P][V], residual after each
// block [L][P][C], attention weights [L][H][P][P].
fn logits_at(t: u32) -> u32 {
    return trace_start() + t * V;
}

fn residual_at(t: u32, layer: u32) -> u32 {
    return trace_start() + P * V + (layer * P + t) * C;
}

fn attention_at(layer: u32, h: u32, t: u32) -> u32 {
    return trace_start() + P * V + L * P * C + ((layer * H + h) * P + t) * P;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let lid = lid3.x;
    let problem = wid.x;
    let n = metas[4u * problem];
    let k = metas[4u * problem + 1u];
    let first_id = problem * (P + 1u);
    let saved = problem * KV + 2u * L * P * C;
    let start = state[2u * problem];
    var tail = state[2u * problem + 1u].x;
    if (lid == 0u) {
        running = start.y;
        written = start.zw;
        too_far = state[2u * problem + 1u].y;
    }
    for (var c = lid; c < C; c += WG) {
        buf[HID + c] = kv[saved + c];
    }
    var t = start.x;
    var left = run.steps;
    loop {
        if (workgroupUniformLoad(&running) == 0u || left == 0u) {
            break;
        }
        left -= 1u;
        let stepped = position_id(problem, t, tail);
        tail = stepped.x;
        if (lid == 0u) {
            position = stepped.y;
        }
        // Every invocation computed the same id; loaded uniformly, the workgroup leaves together.
        let pid = workgroupUniformLoad(&position);
        if (pid >= P) {
            if (lid == 0u) {
                running = 0u;
                too_far = 1u;
            }
            break;
        }
        // Input: a token's embedding, or the previous final hidden state for a thought.
        let thought = t >= n && t < n + k && run.feeds_back == 1u;
        for (var c = lid; c < C; c += WG) {
            var e = 0.0;
            if (thought) {
                e = buf[HID + c];
            } else {
                e = table_value(WTE, min(ids[first_id + t], V - 1u), c);
            }
            buf[X + c] = e + table_value(WPE, pid, c);
        }
        workgroupBarrier();
        for (var layer = 0u; layer < run.layers; layer++) {
            let base = 2u + 12u * layer;
            layer_norm(lid, base, X, XN);
            linear(lid, base + 2u, C, 3u * C, XN, WIDE, 0u);
            attention(lid, problem, layer, t);
            linear(lid, base + 4u, C, C, AO, X, 2u);
            layer_norm(lid, base + 6u, X, XN);
            linear(lid, base + 8u, C, FF, XN, WIDE, 1u);
            linear(lid, base + 10u, FF, C, WIDE, X, 2u);
            if (run.trace == 1u && problem == 0u) {
                for (var c = lid; c < C; c += WG) {
                    out[residual_at(t, layer) + c] = buf[X + c];
                }
            }
        }
        layer_norm(lid, 2u + 12u * L, X, HID);
        // The inputs of thoughts 0 .. k-1 are the outputs of positions n-1 .. n+k-2.
        if (run.feeds_back == 1u && t + 1u >= n && t + 1u < n + k) {
            let row = (problem * run.thoughts_max + t + 1u - n) * C;
            for (var c = lid; c < C; c += WG) {
                out[row + c] = buf[HID + c];
            }
        }
        let predicts = t + 1u >= n + k;
        if (predicts || (run.trace == 1u && problem == 0u)) {
            for (var v = lid; v < V; v += WG) {
                var acc = 0.0;
                for (var c = 0u; c < C; c++) {
                    acc += table_value(WTE, v, c) * buf[HID + c];
                }
                logits[v] = acc;
                if (run.trace == 1u && problem == 0u) {
                    out[logits_at(t) + v] = acc;
                }
            }
        }
        workgroupBarrier();
        if (lid == 0u && predicts) {
            // The reference's argmax: the first strictly largest value, NaN never wins, a row
            // of -inf or NaN gives 0 (`x > -inf` is written `x >= -f32max`).
            var best = NONE;
            var best_value = 0.0;
            for (var v = 0u; v < V; v++) {
                let x = logits[v];
                if (select(x > best_value, x >= -0x1.fffffep+127f, best == NONE)) {
                    best = v;
                    best_value = x;
                }
            }
            let next = select(best, 0u, best == NONE);
            let len = t + 2u;
            ids[first_id + t + 1u] = next;
            written = vec2<u32>(len, select(0u, 1u, next == EOS_ID));
            if (next == EOS_ID || len > P) {
                running = 0u;
            }
        }
        // The next position reads the id just written to storage.
        storageBarrier();
        t += 1u;
    }
    for (var c = lid; c < C; c += WG) {
        kv[saved + c] = buf[HID + c];
    }
    if (lid == 0u) {
        state[2u * problem] = vec4<u32>(t, running, written);
        state[2u * problem + 1u] = vec4<u32>(tail, too_far, 0u, 0u);
    }
}
