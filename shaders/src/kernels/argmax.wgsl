// Greedy choice on the GPU for the last position of the run, p = t0 + rows - 1:
//   ids[p + 1] = argmax_v logits[p, v]
// the first index of the largest value (ties go to the lowest id; NaN never wins; a row of -inf
// or NaN gives 0), exactly the reference's argmax. Only this id is copied back to the host.

override V: u32 = 1u;

@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;

const NONE: u32 = 0xffffffffu;

var<workgroup> best_value: array<f32, 64>;
var<workgroup> best_index: array<u32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
    let p = step.t0 + step.rows - 1u;
    let i = lid.x;
    // The reference starts from -inf and takes strictly larger values; `x > -inf` is written
    // `x >= -f32max` (browsers refuse an -inf constant), and `bi == NONE` means "nothing yet".
    var bv = 0.0;
    var bi = NONE;
    for (var v = i; v < V; v += 64u) {
        let x = logits[p * V + v];
        let better = select(x > bv, x >= -0x1.fffffep+127f, bi == NONE);
        if (better) {
            bv = x;
            bi = v;
        }
    }
    best_value[i] = bv;
    best_index[i] = bi;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (i < stride) {
            let ov = best_value[i + stride];
            let oi = best_index[i + stride];
            let mv = best_value[i];
            let mi = best_index[i];
            let take = oi != NONE && (mi == NONE || ov > mv || (ov == mv && oi < mi));
            if (take) {
                best_value[i] = ov;
                best_index[i] = oi;
            }
        }
        workgroupBarrier();
    }
    if (i == 0u) {
        let b = best_index[0];
        ids[p + 1u] = select(b, 0u, b == NONE);
    }
}
