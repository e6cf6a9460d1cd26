// An ordered reduction over one row, shared by the kernels that need the reference's rounding:
//   FOLD_MAX:     max_i v[i]                 (from v[0]: browsers refuse an -inf constant)
//   FOLD_SUM:     sum_i v[i]
//   FOLD_SQUARES: sum_i (v[i] - centre)^2
// for i = 0 .. n-1 in increasing order, v[i] = row_value(base + i), which the including kernel
// defines. One invocation folds, so the GPU rounds as the oracle does; it reads the row from
// workgroup memory that all 64 invocations fill CHUNK values at a time. Every invocation gets the
// result. Call from uniform control flow (it has barriers).

const CHUNK: u32 = 256u;
const FOLD_MAX: u32 = 0u;
const FOLD_SUM: u32 = 1u;
const FOLD_SQUARES: u32 = 2u;

var<workgroup> chunk: array<f32, 256>;
var<workgroup> folded: f32;

fn ordered_fold(lid: u32, base: u32, n: u32, op: u32, centre: f32) -> f32 {
    var acc = 0.0;
    for (var i0 = 0u; i0 < n; i0 += CHUNK) {
        let len = min(CHUNK, n - i0);
        for (var j = lid; j < len; j += 64u) {
            chunk[j] = row_value(base + i0 + j);
        }
        workgroupBarrier();
        if (lid == 0u) {
            if (op == FOLD_MAX && i0 == 0u) {
                acc = chunk[0];
            }
            for (var j = 0u; j < len; j++) {
                let v = chunk[j];
                if (op == FOLD_MAX) {
                    acc = max(acc, v);
                } else if (op == FOLD_SUM) {
                    acc += v;
                } else {
                    let d = v - centre;
                    acc += d * d;
                }
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        folded = acc;
    }
    workgroupBarrier();
    let result = folded;
    // The next fold may overwrite `folded` only once every invocation has read it.
    workgroupBarrier();
    return result;
}
