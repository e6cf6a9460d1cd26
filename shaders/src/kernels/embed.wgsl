// Input embedding of the positions p = t0 + r, r < rows:
//   x[r, c] = e[r, c] + wpe[positions[p], c]
// positions[p] is p's id in the position table: p itself (absolute ids) or its column (coupled
// ids), written by the host from the decoding plan.
// token (FROM_HIDDEN false): e[r, c] = wte[ids[p], c]   a token (or, for pause thoughts, <latent>)
// thought (FROM_HIDDEN true): e[r, c] = hidden[p - 1, c]  a continuous thought: the final hidden
//                                                        state (after ln_f) of the previous
//                                                        position, read on the GPU
// Tables are int8 with one scale per table row, table[row, c] = q[row, c] * s[row] (INT8), or f32.

override C: u32 = 1u;
override V: u32 = 1u;
override INT8: bool = false;
override FROM_HIDDEN: bool = false;

@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> hidden: array<f32>;
@group(0) @binding(3) var<storage, read> wte: array<u32>;
@group(0) @binding(4) var<storage, read> wte_scale: array<f32>;
@group(0) @binding(5) var<storage, read> wpe: array<u32>;
@group(0) @binding(6) var<storage, read> wpe_scale: array<f32>;
@group(0) @binding(7) var<storage, read_write> x: array<f32>;
@group(0) @binding(8) var<storage, read> positions: array<u32>;

// The word of a table that holds column c of `row`: rows are (C + 3) / 4 words of four int8
// values, or C f32 words padded to the same multiple of 4.
fn word_index(row: u32, c: u32) -> u32 {
    let row_words = (C + 3u) / 4u;
    if (INT8) {
        return row * row_words + c / 4u;
    }
    return row * row_words * 4u + c;
}

// Column c's value in its word; `scale` is the row's (int8 only).
fn value_in(word: u32, c: u32, scale: f32) -> f32 {
    if (INT8) {
        return unpack_i8(word, c % 4u) * scale;
    }
    return bitcast<f32>(word);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let r = gid.y;
    if (c >= C || r >= step.rows) {
        return;
    }
    let p = step.t0 + r;
    // f32 tables come with a placeholder scale buffer of four values: the clamp keeps that
    // unused read in bounds.
    var e = 0.0;
    if (FROM_HIDDEN) {
        e = hidden[(p - 1u) * C + c];
    } else {
        let id = min(ids[p], V - 1u);
        let s = wte_scale[min(id, arrayLength(&wte_scale) - 1u)];
        e = value_in(wte[word_index(id, c)], c, s);
    }
    let row = positions[p];
    let s = wpe_scale[min(row, arrayLength(&wpe_scale) - 1u)];
    x[r * C + c] = e + value_in(wpe[word_index(row, c)], c, s);
}
