// Matrix-vector product for one position (decode): row 0 of x [1, K] times W [K, N]:
//   y[j] = epilogue(b[j] + sum_{i<K} x[i] W[i, j])
// (W, scales, epilogue: see linear_common.wgsl). Each invocation owns four consecutive outputs
// and reads one packed word per input, so a row of W is read once, coalesced across invocations.

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j4 = gid.x;
    if (j4 >= n4()) {
        return;
    }
    let s = scale4(j4);
    var acc = bias4(j4);
    // Unrolled by 8: the loads of eight inputs are issued before the eight adds, which still
    // run in increasing i (the same rounding as the plain loop).
    var i = 0u;
    loop {
        if (i + 8u > K) {
            break;
        }
        let w0 = w4(i, j4, s);
        let w1 = w4(i + 1u, j4, s);
        let w2 = w4(i + 2u, j4, s);
        let w3 = w4(i + 3u, j4, s);
        let w5 = w4(i + 4u, j4, s);
        let w6 = w4(i + 5u, j4, s);
        let w7 = w4(i + 6u, j4, s);
        let w8 = w4(i + 7u, j4, s);
        let x0 = x[i];
        let x1 = x[i + 1u];
        let x2 = x[i + 2u];
        let x3 = x[i + 3u];
        let x5 = x[i + 4u];
        let x6 = x[i + 5u];
        let x7 = x[i + 6u];
        let x8 = x[i + 7u];
        acc += x0 * w0;
        acc += x1 * w1;
        acc += x2 * w2;
        acc += x3 * w3;
        acc += x5 * w5;
        acc += x6 * w6;
        acc += x7 * w7;
        acc += x8 * w8;
        i += 8u;
    }
    for (; i < K; i++) {
        acc += x[i] * w4(i, j4, s);
    }
    store4(0u, j4, acc);
}
