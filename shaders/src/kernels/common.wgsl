// Shared by every kernel (prepended to each kernel's source by the host).
//
// `step` selects which positions a dispatch works on: rows r = 0 .. rows-1 are the absolute
// positions t0 + r. The host keeps one table of these records per model and picks an entry with a
// dynamic uniform offset, so nothing is uploaded per token.
//
// int8 weights are packed four to a u32 word, little end first, along the output axis of a
// Conv1D weight [in, out] or along the width of an embedding row; f32 weights use the same
// layout with one value per word (rows padded to a multiple of 4 with zeros in both cases).
//   unpack_i8x4(word) = (q0, q1, q2, q3) as f32, each q sign-extended from its byte.

struct Step {
    t0: u32,
    rows: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> step: Step;

fn unpack_i8x4(word: u32) -> vec4<f32> {
    let w = bitcast<i32>(word);
    return vec4<f32>(
        f32(extractBits(w, 0u, 8u)),
        f32(extractBits(w, 8u, 8u)),
        f32(extractBits(w, 16u, 8u)),
        f32(extractBits(w, 24u, 8u)),
    );
}

fn unpack_i8(word: u32, lane: u32) -> f32 {
    return f32(extractBits(bitcast<i32>(word), lane * 8u, 8u));
}

// GPT-2's tanh GELU, written in the reference's operation order:
//   gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
// tanh's argument is clamped to [-10, 10], where tanh is already +-1 in f32; some drivers compute
// tanh through exp and return NaN for large arguments.
fn gelu(x: f32) -> f32 {
    let u = 0.7978846 * (x + 0.044715 * x * x * x);
    return 0.5 * x * (1.0 + tanh(clamp(u, -10.0, 10.0)));
}

// What a linear layer writes at an output holding `old`, from acc = b + sum_i x[i] W[i, j]:
//   mode 0 acc, 1 gelu(acc) (bias + tanh-GELU), 2 old + acc (the residual add).
fn epilogue(mode: u32, old: f32, acc: f32) -> f32 {
    if (mode == 1u) {
        return gelu(acc);
    }
    if (mode == 2u) {
        return old + acc;
    }
    return acc;
}
