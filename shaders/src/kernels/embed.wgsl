// Input embedding of the positions p = t0 + r, r < rows:
//   x[r, c] = e[r, c] + wpe[p, c]
// embed_token:  e[r, c] = wte[ids[p], c]         a token (or, for pause thoughts, the <latent> token)
// embed_hidden: e[r, c] = hidden[p - 1, c]       a continuous thought: the final hidden state (after
//                                                ln_f) of the previous position, read on the GPU
// Tables are int8 with one scale per table row, table[row, c] = q[row, c] * s[row] (INT8), or f32.

override C: u32 = 1u;
override V: u32 = 1u;
override INT8: bool = false;

@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> hidden: array<f32>;
@group(0) @binding(3) var<storage, read> wte: array<u32>;
@group(0) @binding(4) var<storage, read> wte_scale: array<f32>;
@group(0) @binding(5) var<storage, read> wpe: array<u32>;
@group(0) @binding(6) var<storage, read> wpe_scale: array<f32>;
@group(0) @binding(7) var<storage, read_write> x: array<f32>;

fn row_words() -> u32 {
    return (C + 3u) / 4u;
}

fn wte_at(row: u32, c: u32) -> f32 {
    if (INT8) {
        return unpack_i8(wte[row * row_words() + c / 4u], c % 4u) * wte_scale[row];
    }
    return bitcast<f32>(wte[row * row_words() * 4u + c]);
}

fn wpe_at(row: u32, c: u32) -> f32 {
    if (INT8) {
        return unpack_i8(wpe[row * row_words() + c / 4u], c % 4u) * wpe_scale[row];
    }
    return bitcast<f32>(wpe[row * row_words() * 4u + c]);
}

@compute @workgroup_size(64)
fn embed_token(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let r = gid.y;
    if (c >= C || r >= step.rows) {
        return;
    }
    let p = step.t0 + r;
    let id = min(ids[p], V - 1u);
    x[r * C + c] = wte_at(id, c) + wpe_at(p, c);
}

@compute @workgroup_size(64)
fn embed_hidden(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let r = gid.y;
    if (c >= C || r >= step.rows) {
        return;
    }
    let p = step.t0 + r;
    x[r * C + c] = hidden[(p - 1u) * C + c] + wpe_at(p, c);
}
