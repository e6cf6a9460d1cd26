//! The checks shared by the native tests (`kernels.rs`, `engine.rs`, on lavapipe) and the
//! browser test (`web.rs`, headless Chromium WebGPU): each WGSL kernel against its CPU reference
//! (`kernels::<op>::reference`, f64, on the dequantized weights for int8) on fresh random inputs
//! and several shapes, outputs
//! poisoned with NaN before each run, ‖out − ref‖ / ‖ref‖ < 1e-5; and the engine against the
//! reference engine.
#![allow(dead_code)]

use crate::common::*;
use coconut_core::decoding::Solution;
use coconut_core::problem::Problem;
use coconut_core::reference::ReferenceModel;
use coconut_core::skeleton::Role;
use coconut_core::stage::{Positions, Stage, StageKind};
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::{quantize_int8, ModelWeights, Tensor, TensorData};
use coconut_core::ModelConfig;
use coconut_shaders::kernels::{
    self, Argmax, Attention, Driver, Embed, EmbedInput, Epilogue, LayerNorm, Linear, LmHead, Step,
    StepTable,
};
use coconut_shaders::pack::{pack_f32, pack_quantized};
use coconut_shaders::{Gpu, WgpuEngine};
use rand::Rng;
use std::sync::Arc;

/// A random matrix as the kernels get it (packed words, scales) and as the reference sees it
/// (dequantized f32, row-major).
struct Matrix {
    words: Vec<u32>,
    scales: Vec<f32>,
    dequantized: Vec<f32>,
}

fn matrix(seed: u64, rows: usize, cols: usize, role: Role, int8: bool) -> Matrix {
    let mut r = rng(seed);
    // Rows of different magnitudes, so per-row scales matter.
    let mut values = random(&mut r, rows * cols, -1.0, 1.0);
    for (i, v) in values.iter_mut().enumerate() {
        let out = if role == Role::Conv1d {
            i % cols
        } else {
            i / cols
        };
        *v *= 0.05 + (out % 7) as f32 * 0.1;
    }
    if int8 {
        let (q, s) = quantize_int8(&values, rows, cols, role);
        let tensor = Tensor {
            shape: vec![rows, cols],
            role,
            data: TensorData::Int8 {
                q: q.clone(),
                scales: s.clone(),
            },
        };
        let p = pack_quantized(&q, &s, rows, cols, role);
        Matrix {
            words: p.words,
            scales: p.scales,
            dequantized: tensor.to_f32(),
        }
    } else {
        Matrix {
            words: pack_f32(&values, rows, cols),
            scales: vec![1.0; 4],
            dequantized: values,
        }
    }
}

/// A step table of one record: rows `0..rows` at positions `t0..`.
fn one_step(device: &wgpu::Device, t0: usize, rows: usize) -> StepTable {
    let step = Step {
        t0: t0 as u32,
        rows: rows as u32,
    };
    StepTable::new(device, &[step])
}

/// (C, V, P, t0, rows) for the two kernels that read a table of V rows, the embedding and the
/// LM head: widths that are and are not multiples of 4, one row or many, a run at the start or
/// deep into the positions.
const TABLE_CASES: [(usize, usize, usize, usize, usize); 8] = [
    (16, 22, 8, 0, 5),
    (16, 22, 8, 2, 1),
    (37, 5, 12, 3, 1),
    (37, 70, 12, 0, 12),
    (128, 22, 128, 0, 128),
    (128, 22, 128, 0, 9),
    (128, 22, 128, 77, 1),
    (128, 22, 128, 120, 1),
];

pub async fn embedding(gpu: &Gpu) {
    let d = &gpu.device;
    for (case, &(c, v, p, t0, rows)) in TABLE_CASES.iter().enumerate() {
        for int8 in [true, false] {
            let seed = case as u64 * 10 + int8 as u64;
            let wte = matrix(seed, v, c, Role::Embedding, int8);
            let wpe = matrix(seed + 100, p, c, Role::Embedding, int8);
            let mut r = rng(seed + 200);
            let ids: Vec<u32> = (0..p).map(|_| r.random_range(0..v as u32)).collect();
            let hidden = random(&mut r, p * c, -2.0, 2.0);
            // Position ids in any order (coupled ids repeat and skip).
            let positions: Vec<u32> = (0..p).map(|_| r.random_range(0..p as u32)).collect();
            let kernel = Embed::new(d, c, v, int8);
            let steps = one_step(d, t0, rows);
            let ids_b = u32s(gpu, &ids);
            let positions_b = u32s(gpu, &positions);
            let hidden_b = f32s(gpu, &hidden);
            let bufs = [
                f32s(gpu, &[]),
                u32s(gpu, &wte.words),
                f32s(gpu, &wte.scales),
                u32s(gpu, &wpe.words),
                f32s(gpu, &wpe.scales),
            ];
            for input in [EmbedInput::Token, EmbedInput::Hidden] {
                if input == EmbedInput::Hidden && t0 == 0 {
                    continue;
                }
                let x = poisoned(gpu, rows * c);
                let bg = kernel.token.bind(
                    d,
                    &steps,
                    [
                        &ids_b,
                        &hidden_b,
                        &bufs[1],
                        &bufs[2],
                        &bufs[3],
                        &bufs[4],
                        &x,
                        &positions_b,
                    ],
                );
                run(gpu, |pass| kernel.dispatch(pass, &bg, &steps, 0, input));
                let out = read_f32(gpu, &x, rows * c).await;
                let reference: Vec<f64> = (t0..t0 + rows)
                    .flat_map(|pos| {
                        let e = match input {
                            EmbedInput::Token => &wte.dequantized[ids[pos] as usize * c..][..c],
                            EmbedInput::Hidden => &hidden[(pos - 1) * c..][..c],
                        };
                        let row = positions[pos] as usize;
                        kernels::embed::reference(e, &wpe.dequantized[row * c..][..c])
                    })
                    .collect();
                assert_close(
                    &out,
                    &reference,
                    &format!("embed {input:?} case {case}: C={c} V={v} P={p} t0={t0} rows={rows} int8={int8}"),
                );
            }
        }
    }
}

pub async fn layer_norm(gpu: &Gpu) {
    let d = &gpu.device;
    for (case, &(c, rows, t0, at_pos)) in [
        (16usize, 1usize, 0usize, false),
        (37, 5, 0, false),
        (128, 12, 3, true),
        (300, 2, 9, true),
    ]
    .iter()
    .enumerate()
    {
        let mut r = rng(case as u64 + 40);
        // A large common offset: the variance must be computed around the mean (stability).
        let x: Vec<f32> = random(&mut r, rows * c, -3.0, 3.0)
            .iter()
            .map(|v| v + 20.0)
            .collect();
        let g = random(&mut r, c, 0.5, 1.5);
        let b = random(&mut r, c, -0.2, 0.2);
        let eps = 1e-5f32;
        let out_rows = if at_pos { t0 + rows } else { rows };
        let y = poisoned(gpu, out_rows * c);
        let k = LayerNorm::new(d, c, eps, at_pos);
        let steps = one_step(d, t0, rows);
        let (xb, gb, bb) = (f32s(gpu, &x), f32s(gpu, &g), f32s(gpu, &b));
        let bg = k.kernel.bind(d, &steps, [&xb, &gb, &bb, &y]);
        run(gpu, |pass| k.dispatch(pass, &bg, &steps, 0));
        let all = read_f32(gpu, &y, out_rows * c).await;
        let first = if at_pos { t0 * c } else { 0 };
        let out = &all[first..];
        let reference: Vec<f64> = x
            .chunks(c)
            .flat_map(|row| kernels::layernorm::reference(row, &g, &b, eps))
            .collect();
        assert_close(
            out,
            &reference,
            &format!("layernorm case {case}: C={c} rows={rows} t0={t0} at_pos={at_pos}"),
        );
        if at_pos {
            assert!(
                all[..first].iter().all(|v| v.is_nan()),
                "rows before t0 untouched"
            );
        }
    }
}

pub async fn products(gpu: &Gpu) {
    let d = &gpu.device;
    let shapes = [
        (16usize, 48usize),
        (37, 13),
        (128, 384),
        (512, 128),
        (5, 130),
    ];
    for (case, &(k, n)) in shapes.iter().enumerate() {
        for int8 in [true, false] {
            let w = matrix(case as u64 * 3 + int8 as u64 + 60, k, n, Role::Conv1d, int8);
            for epilogue in [Epilogue::Store, Epilogue::Gelu, Epilogue::Residual] {
                let lin = Linear::new(d, k, n, int8, epilogue);
                for rows in [1usize, 2, 17, 33] {
                    let mut r = rng((case * 1000 + rows) as u64 + epilogue as u64);
                    let x = random(&mut r, rows * k, -1.0, 1.0);
                    let bias = random(&mut r, n, -0.5, 0.5);
                    let y0 = random(&mut r, rows * n, -1.0, 1.0);
                    let steps = one_step(d, 0, rows);
                    let reference: Vec<f64> = (0..rows)
                        .flat_map(|row| {
                            let (x, y0) = (&x[row * k..][..k], &y0[row * n..][..n]);
                            kernels::linear::reference(x, &w.dequantized, &bias, epilogue, y0)
                        })
                        .collect();
                    let kinds: &[bool] = if rows == 1 { &[true, false] } else { &[false] };
                    for &matvec in kinds {
                        let y = match epilogue {
                            Epilogue::Residual => f32s(gpu, &y0),
                            _ => poisoned(gpu, rows * n),
                        };
                        let bufs = [
                            f32s(gpu, &x),
                            u32s(gpu, &w.words),
                            f32s(gpu, &w.scales),
                            f32s(gpu, &bias),
                        ];
                        let bg = lin.matvec.bind(
                            d,
                            &steps,
                            [&bufs[0], &bufs[1], &bufs[2], &bufs[3], &y],
                        );
                        run(gpu, |pass| {
                            lin.dispatch_tiled(pass, &bg, &steps, 0, !matvec)
                        });
                        let out = read_f32(gpu, &y, rows * n).await;
                        let kind = if matvec { "matvec" } else { "matmul" };
                        assert_close(
                            &out,
                            &reference,
                            &format!("{kind} K={k} N={n} rows={rows} int8={int8} {epilogue:?}"),
                        );
                    }
                }
            }
        }
    }
}

pub async fn attention(gpu: &Gpu) {
    let d = &gpu.device;
    let cases = [
        (16usize, 4usize, 8usize, 5usize, 1usize),
        (16, 4, 8, 0, 8),
        (24, 3, 40, 3, 4),
        (128, 4, 128, 0, 13),
        (128, 4, 128, 100, 1),
        (64, 1, 70, 69, 1),
        // More keys than one 256-value chunk of workgroup memory.
        (32, 2, 300, 280, 3),
        (32, 2, 300, 0, 20),
    ];
    for (case, &(c, h, p, t0, rows)) in cases.iter().enumerate() {
        let dh = c / h;
        let mut r = rng(case as u64 + 300);
        // Scores of several units, so the softmax is far from uniform.
        let qkv = random(&mut r, rows * 3 * c, -2.0, 2.0);
        let k_old = random(&mut r, p * c, -2.0, 2.0);
        let v_old = random(&mut r, p * c, -2.0, 2.0);
        let mut kc_init = vec![f32::NAN; p * c];
        let mut vc_init = vec![f32::NAN; p * c];
        kc_init[..t0 * c].copy_from_slice(&k_old[..t0 * c]);
        vc_init[..t0 * c].copy_from_slice(&v_old[..t0 * c]);
        let k = Attention::new(d, c, h, p);
        let steps = one_step(d, t0, rows);
        let (qb, kb, vb) = (f32s(gpu, &qkv), f32s(gpu, &kc_init), f32s(gpu, &vc_init));
        let att = poisoned(gpu, h * p * p);
        let out = poisoned(gpu, rows * c);
        let bg = k.kernel.bind(d, &steps, [&qb, &kb, &vb, &att, &out]);
        run(gpu, |pass| k.dispatch(pass, &bg, &steps, 0));
        // Reference in f64.
        let key = |s: usize, i: usize| -> f64 {
            if s < t0 {
                k_old[s * c + i] as f64
            } else {
                qkv[(s - t0) * 3 * c + c + i] as f64
            }
        };
        let val = |s: usize, i: usize| -> f64 {
            if s < t0 {
                v_old[s * c + i] as f64
            } else {
                qkv[(s - t0) * 3 * c + 2 * c + i] as f64
            }
        };
        let mut ref_out = vec![0f64; rows * c];
        let mut ref_att = Vec::new();
        let mut got_att = Vec::new();
        let att_all = read_f32(gpu, &att, h * p * p).await;
        for row in 0..rows {
            let pos = t0 + row;
            for head in 0..h {
                let q: Vec<f64> = (0..dh)
                    .map(|i| qkv[row * 3 * c + head * dh + i] as f64)
                    .collect();
                let of_head = |f: &dyn Fn(usize, usize) -> f64| -> Vec<Vec<f64>> {
                    (0..=pos)
                        .map(|s| (0..dh).map(|i| f(s, head * dh + i)).collect())
                        .collect()
                };
                let (probs, out) =
                    kernels::attention::reference(&q, &of_head(&key), &of_head(&val));
                ref_out[row * c + head * dh..][..dh].copy_from_slice(&out);
                let base = (head * p + pos) * p;
                got_att.extend_from_slice(&att_all[base..base + pos + 1]);
                ref_att.extend(probs);
            }
        }
        let got = read_f32(gpu, &out, rows * c).await;
        let what = format!("attention case {case}: C={c} H={h} P={p} t0={t0} rows={rows}");
        assert_close(&got, &ref_out, &format!("{what}, output"));
        assert_close(&got_att, &ref_att, &format!("{what}, weights"));
        // This run's keys and values were appended to the cache; nothing past it was written.
        let kc = read_f32(gpu, &kb, p * c).await;
        let vc = read_f32(gpu, &vb, p * c).await;
        for row in 0..rows {
            let pos = t0 + row;
            for i in 0..c {
                assert_eq!(
                    kc[pos * c + i],
                    qkv[row * 3 * c + c + i],
                    "k cache row {pos}"
                );
                assert_eq!(
                    vc[pos * c + i],
                    qkv[row * 3 * c + 2 * c + i],
                    "v cache row {pos}"
                );
            }
        }
        assert!(
            kc[(t0 + rows) * c..].iter().all(|v| v.is_nan()),
            "k cache past the run untouched"
        );
    }
}

pub async fn lm_head(gpu: &Gpu) {
    let d = &gpu.device;
    for (case, &(c, v, p, t0, rows)) in TABLE_CASES.iter().enumerate() {
        for int8 in [true, false] {
            let wte = matrix(case as u64 + 500 + int8 as u64, v, c, Role::Embedding, int8);
            let mut r = rng(case as u64 + 600);
            let hidden = random(&mut r, p * c, -2.0, 2.0);
            let k = LmHead::new(d, c, v, int8);
            let steps = one_step(d, t0, rows);
            let logits = poisoned(gpu, p * v);
            let (hb, wb, sb) = (
                f32s(gpu, &hidden),
                u32s(gpu, &wte.words),
                f32s(gpu, &wte.scales),
            );
            let bg = k.kernel.bind(d, &steps, [&hb, &wb, &sb, &logits]);
            run(gpu, |pass| k.dispatch(pass, &bg, &steps, 0));
            let all = read_f32(gpu, &logits, p * v).await;
            let out = &all[t0 * v..(t0 + rows) * v];
            let reference: Vec<f64> = (t0..t0 + rows)
                .flat_map(|pos| {
                    kernels::lm_head::reference(&hidden[pos * c..][..c], &wte.dequantized)
                })
                .collect();
            assert_close(
                out,
                &reference,
                &format!("lm_head case {case}: C={c} V={v} t0={t0} rows={rows} int8={int8}"),
            );
        }
    }
}

pub async fn argmax(gpu: &Gpu) {
    let d = &gpu.device;
    let p = 6usize;
    let mut r = rng(900);
    let mut cases: Vec<(usize, Vec<f32>)> = Vec::new();
    for v in [1usize, 5, 22, 64, 65, 200] {
        cases.push((v, random(&mut r, v, -3.0, 3.0)));
    }
    // Ties: the lowest id wins, even when the tied values fall to different invocations.
    let mut tie = vec![0.5f32; 200];
    tie[3] = 0.0;
    tie[130] = 2.0;
    tie[66] = 2.0;
    tie[190] = 2.0;
    cases.push((200, tie));
    let mut tie_first = vec![1.0f32; 22];
    tie_first[0] = 1.0;
    cases.push((22, tie_first));
    // NaN never wins; an all -inf row gives 0.
    let mut nan = vec![0.0f32; 22];
    nan[2] = f32::NAN;
    nan[9] = 1.5;
    cases.push((22, nan));
    cases.push((22, vec![f32::NEG_INFINITY; 22]));
    for (case, (v, row)) in cases.iter().enumerate() {
        let v = *v;
        let expect = kernels::argmax::reference(row);
        let t0 = 2usize;
        let rows = 3usize; // the argmax reads the last row, p = t0 + rows - 1
        let pos = t0 + rows - 1;
        let mut logits = vec![9.0f32; p * v]; // other rows would win if read
        logits[pos * v..(pos + 1) * v].copy_from_slice(row);
        let k = Argmax::new(d, v);
        let steps = one_step(d, t0, rows);
        let poison = 0xDEAD_BEEFu32;
        let (lb, ib) = (f32s(gpu, &logits), u32s(gpu, &vec![poison; p + 1]));
        let bg = k.kernel.bind(d, &steps, [&lb, &ib]);
        run(gpu, |pass| k.dispatch(pass, &bg, &steps, 0));
        let ids = read_u32(gpu, &ib, p + 1).await;
        assert_eq!(ids[pos + 1], expect, "argmax case {case} (V={v})");
        for (i, &id) in ids.iter().enumerate() {
            if i != pos + 1 {
                assert_eq!(id, poison, "only ids[p+1] is written (case {case})");
            }
        }
    }
}

pub fn small_config() -> ModelConfig {
    ModelConfig {
        vocab_size: coconut_core::tokenizer::VOCAB.len(),
        n_positions: 40,
        n_embd: 32,
        n_layer: 2,
        n_head: 4,
        layer_norm_epsilon: 1e-5,
    }
}

#[allow(unused_imports)] // not every test binary uses it
pub use coconut_core::weights::eos_biased_weights as eos_biased;

pub fn stages() -> Vec<Stage> {
    let mut s = Stage::curriculum(1, 5);
    s.push(Stage::latent(0, 1, 5).with_kind(StageKind::NoCot));
    s.push(Stage::latent(0, 1, 5).with_kind(StageKind::Pause));
    s.push(Stage::latent(3, 2, 5));
    // Coupled position ids: a written stage and the all-latent one (thoughts per column).
    s.push(Stage::latent(2, 2, 5).with_positions(Positions::COUPLED));
    s.push(Stage::latent(5, 1, 5).with_positions(Positions::COUPLED));
    // Padded operands with ahead ids (the question written `00347 + 00085`).
    s.push(Stage::latent(5, 1, 5).with_positions(Positions::coupled(true, Some(2))));
    s
}

pub fn problems(seed: u64, n: usize) -> Vec<Problem> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let mut operand = || {
                let digits = r.random_range(1..=4u32);
                r.random_range(
                    if digits == 1 {
                        0
                    } else {
                        10u64.pow(digits - 1)
                    }..10u64.pow(digits),
                )
            };
            Problem::new(operand(), operand())
        })
        .collect()
}

pub fn rel(a: &[f32], b: &[f32]) -> f64 {
    rel_err(a, &b.iter().map(|&x| x as f64).collect::<Vec<_>>())
}

/// Greedy output identical; thoughts within tolerance.
pub fn assert_same(gpu: &Solution, reference: &Solution, what: &str) {
    assert_eq!(gpu.text, reference.text, "{what}: text");
    assert_eq!(gpu.answer, reference.answer, "{what}: answer");
    let (g, r) = (&gpu.generation, &reference.generation);
    assert_eq!(g.ids, r.ids, "{what}: ids");
    assert_eq!(g.finished, r.finished, "{what}: finished");
    assert_eq!(g.prompt_len, r.prompt_len, "{what}: prompt_len");
    assert_eq!(g.thoughts.len(), r.thoughts.len(), "{what}: thought count");
    for (j, (a, b)) in g.thoughts.iter().zip(&r.thoughts).enumerate() {
        let e = rel(a, b);
        assert!(e < 1e-5, "{what}: thought {j} relative error {e}");
    }
}

/// Counts of compared generations.
#[derive(Debug, Default)]
pub struct Tally {
    pub runs: usize,
    pub finished: usize,
    pub unfinished: usize,
}

impl Tally {
    /// Counts one compared generation (the reference's solution).
    pub fn count(&mut self, reference: &Solution) {
        self.runs += 1;
        if reference.generation.finished {
            self.finished += 1;
        } else {
            self.unfinished += 1;
        }
    }
}

/// Every stage kind on `per_stage` generated problems: the WGSL engine's solutions equal the
/// reference engine's, one problem at a time by default (the solver where it takes the stage)
/// and on the per-layer path, and all of a stage's problems as one batch.
pub async fn engine_parity(
    gpu: Arc<Gpu>,
    weights: &ModelWeights,
    seed: u64,
    per_stage: usize,
    tally: &mut Tally,
) {
    let tok = Tokenizer::new();
    let reference = ReferenceModel::new(weights);
    let mut engine = WgpuEngine::on(gpu, weights).expect("engine");
    for path in ["default", "per-layer", "batch"] {
        engine.use_per_layer(path == "per-layer");
        for (si, stage) in stages().iter().enumerate() {
            let problems = problems(seed * 100 + si as u64, per_stage);
            let got = if path == "batch" {
                engine.solve_batch(&tok, &problems, stage).await.unwrap()
            } else {
                let mut one_by_one = Vec::new();
                for p in &problems {
                    one_by_one.push(engine.solve(&tok, p, stage, false).await.unwrap());
                }
                one_by_one
            };
            for (pi, (p, got)) in problems.iter().zip(&got).enumerate() {
                let want = reference.solve(&tok, p, stage, false).unwrap();
                let what = format!("{path} {} {p:?} (problem {pi}, seed {seed})", stage.id());
                assert_same(got, &want, &what);
                tally.count(&want);
            }
        }
    }
}
