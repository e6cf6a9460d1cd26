//! The seed's model family (an imported GPT-2 Coconut checkpoint, docs/seed-format.md) on every
//! engine that runs on the CPU: core's reference engine, the candle model and the CPU engine.
//! Nothing here is a decoding loop of its own: a free run is core's seed [`Decoder`]
//! (`coconut_core::seed::decode::decoder`) handed to each engine's own loop
//! ([`ReferenceModel::run_decoder`], [`crate::eval::run_decoders`],
//! [`CpuTrainer::run_decoders`]), and the seed's teacher-forced metric is each engine's one-pass
//! forward over the layout ([`SeedLayout::metric_layout`]; the reference engine steps through
//! it, [`teacher_forced`]). The engines follow the folder's config (50,261 tokens, GPT-2's
//! absolute position ids, 1024 positions for the real checkpoints), as for this project's own
//! models.

use crate::batch::{hidden_states, Batch};
use crate::cpu::CpuTrainer;
use crate::model::{to_host, Gpt};
use anyhow::{ensure, Result};
use candle_core::Device;
use coconut_core::decoder::Decoder;
use coconut_core::decoding::argmax;
use coconut_core::reference::ReferenceModel;
use coconut_core::seed::decode::{teacher_forced, TeacherForced};
use coconut_core::seed::layout::SeedLayout;
use coconut_core::weights::ModelWeights;

/// Which engine runs a seed folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedEngineKind {
    Reference,
    Candle,
    Cpu,
}

/// A seed stage's model on one engine.
pub enum SeedEngine {
    /// Keeps int8 weights as stored.
    Reference(Box<ReferenceModel>),
    /// f32 (int8 dequantized), on the CPU.
    Candle(Box<Gpt>),
    /// f32 (int8 dequantized), the parameters only (no training buffers).
    Cpu(Box<CpuTrainer>),
}

/// A finished free run: the whole sequence (prompt, thought slots, generated tokens), where
/// the prompt ends, and how many thoughts were fed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreeRun {
    pub ids: Vec<u32>,
    pub prompt_len: usize,
    pub thoughts: usize,
}

impl FreeRun {
    fn of(decoder: Decoder) -> FreeRun {
        FreeRun {
            prompt_len: decoder.plan().prompt_len,
            thoughts: decoder.thoughts_fed(),
            ids: decoder.into_ids(),
        }
    }
}

impl SeedEngine {
    pub fn load(kind: SeedEngineKind, weights: &ModelWeights) -> Result<SeedEngine> {
        Ok(match kind {
            SeedEngineKind::Reference => {
                SeedEngine::Reference(Box::new(ReferenceModel::new(weights)))
            }
            SeedEngineKind::Candle => {
                SeedEngine::Candle(Box::new(Gpt::from_weights(weights, &Device::Cpu)?))
            }
            SeedEngineKind::Cpu => SeedEngine::Cpu(Box::new(CpuTrainer::for_inference(weights)?)),
        })
    }

    /// The model's positions (what a [`Decoder`] for it is planned with).
    pub fn n_positions(&self) -> usize {
        match self {
            SeedEngine::Reference(m) => m.config().n_positions,
            SeedEngine::Candle(m) => m.config().n_positions,
            SeedEngine::Cpu(m) => m.config().n_positions,
        }
    }

    /// Runs one decoding through the engine's own loop.
    pub fn run(&mut self, decoder: Decoder) -> Result<FreeRun> {
        Ok(match self {
            SeedEngine::Reference(m) => {
                let g = m.run_decoder(decoder, false)?;
                FreeRun {
                    thoughts: g.thoughts.len(),
                    ids: g.ids,
                    prompt_len: g.prompt_len,
                }
            }
            SeedEngine::Candle(m) => FreeRun::of(one(crate::eval::run_decoders(m, vec![decoder])?)),
            SeedEngine::Cpu(m) => FreeRun::of(one(m.run_decoders(vec![decoder], 1)?)),
        })
    }

    /// The seed's teacher-forced pass over `layout`: the argmax at each answer position and the
    /// thought vectors fed.
    pub fn teacher_forced(&mut self, layout: &SeedLayout) -> Result<TeacherForced> {
        let metric = layout.metric_layout();
        let (hidden, logits, c, v) = match self {
            SeedEngine::Reference(m) => return Ok(teacher_forced(m, layout)?),
            SeedEngine::Candle(m) => {
                let batch = Batch::of_layouts(&[&metric], true, m.device())?;
                let hidden = hidden_states(m, &batch)?; // (1, T, C)
                let (_, t, c) = hidden.dims3()?;
                let rows = hidden.reshape((t, c))?;
                let logits = m.logits(&rows.index_select(&batch.predictors, 0)?)?; // (N, V)
                (to_host(&rows)?, to_host(&logits)?, c, m.config().vocab_size)
            }
            SeedEngine::Cpu(m) => {
                let (logits, hidden) = m.forward_layout(&metric, true)?;
                let config = m.config();
                (hidden, logits, config.n_embd, config.vocab_size)
            }
        };
        let answer_argmax: Vec<u32> = logits.chunks_exact(v).map(argmax).collect();
        ensure!(
            answer_argmax.len() == layout.answer_positions.len(),
            "{} predictions for {} answer positions",
            answer_argmax.len(),
            layout.answer_positions.len()
        );
        let thoughts = layout
            .thoughts
            .clone()
            .map(|t| hidden[(t - 1) * c..t * c].to_vec())
            .collect();
        Ok(TeacherForced {
            answer_argmax,
            thoughts,
        })
    }
}

/// The one decoder of a batch of one.
fn one(mut decoders: Vec<Decoder>) -> Decoder {
    decoders.pop().expect("one decoder in, one out")
}
