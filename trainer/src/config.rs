//! The training settings, serializable as a run's `config.json`.

use crate::optim::AdamWConfig;
use anyhow::{ensure, Context, Result};
use coconut_core::data::DataConfig;
use coconut_core::positions::PositionIds;
use coconut_core::problem::max_steps;
use coconut_core::stage::{AnswerOrder, LatentOrder, Positions};
use coconut_core::{ModelConfig, Problem, Stage, StageKind};
use serde::{Deserialize, Serialize};

/// Which implementation trains the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The CPU engine on the CPU, candle on any other device.
    #[default]
    Auto,
    /// The hand-written CPU engine (trainer/src/cpu): thoughts through cached keys and values,
    /// fused kernels, one shard of each batch per core.
    Cpu,
    /// The model composed from candle's tensor ops (any device; re-runs the prefix per thought).
    Candle,
}

/// One stage to train and for how long.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StagePlan {
    /// `stage0` … `stage5`, `nocot` or `pause`.
    pub stage: String,
    /// Passes over the training set; fractions allowed. With `until_val`, the most it may take.
    pub epochs: f64,
    /// End the stage early once greedy accuracy on the validation problems (percent, checked
    /// every `val_every` steps) reaches this.
    pub until_val: Option<f64>,
    /// This stage's peak learning rate, when it differs from the run's `lr`.
    pub lr: Option<f64>,
    /// This stage's data mixing, when it differs from the run's `mix`.
    pub mix: Option<f64>,
    /// Extra copies, in each of this stage's epochs, of a training problem for each of its
    /// columns beyond the first whose digits sum to 9 (there only the carry coming in decides
    /// between writing 9 and carrying on: long carry chains, rare among random problems).
    pub repeat_nines: Option<usize>,
    /// This stage's own seed for its draws (data order, mixing, offsets, gaps, padding,
    /// noise), when it differs from the run's `seed`: a branch may retrain a stage with other
    /// draws from the same start, which is how one stage's seed-to-seed spread is measured.
    pub seed: Option<u64>,
    /// This stage's own `max_operand_pad`, when it differs from the run's: the all-latent
    /// stage's layouts are short enough to pad its operands as wide as the longest evaluated
    /// problem, so its chain of thoughts is trained as long, where a written stage's steps would
    /// no longer fit the positions. The earlier stages mixed into this one draw from the run's.
    pub max_operand_pad: Option<usize>,
    /// This stage's own `dropout`, when it differs from the run's (so a branch may measure it
    /// on one stage).
    pub dropout: Option<f64>,
    /// This stage's own `thought_noise`, when it differs from the run's.
    pub thought_noise: Option<f64>,
}

impl StagePlan {
    /// `epochs` of `stage` with the run's settings.
    pub fn new(stage: impl Into<String>, epochs: f64) -> StagePlan {
        StagePlan {
            stage: stage.into(),
            epochs,
            until_val: None,
            lr: None,
            mix: None,
            repeat_nines: None,
            seed: None,
            max_operand_pad: None,
            dropout: None,
            thought_noise: None,
        }
    }

    /// The stage's peak learning rate in a run with `config`.
    pub fn peak_lr(&self, config: &TrainConfig) -> f64 {
        self.lr.unwrap_or(config.lr)
    }

    /// The seed of the stage's draws in a run with `config`.
    pub fn draw_seed(&self, config: &TrainConfig) -> u64 {
        self.seed.unwrap_or(config.seed)
    }

    /// The widest operand padding this stage's own layouts draw in a run with `config`.
    pub fn operand_pad_max(&self, config: &TrainConfig) -> usize {
        self.max_operand_pad.unwrap_or(config.max_operand_pad)
    }

    /// The widest operand padding any layout of this stage is written with in a run with
    /// `config`: its own draws, the earlier stages' mixed in, or inference's.
    pub fn widest_operand_pad(&self, config: &TrainConfig) -> usize {
        [self.operand_pad_max(config), config.max_operand_pad]
            .into_iter()
            .chain(config.positions.operand_pad())
            .max()
            .unwrap_or(0)
    }

    /// The stage's dropout probability in a run with `config`.
    pub fn dropout_rate(&self, config: &TrainConfig) -> f64 {
        self.dropout.unwrap_or(config.dropout)
    }

    /// The standard deviation of the stage's thought noise in a run with `config`.
    pub fn thought_noise_std(&self, config: &TrainConfig) -> f64 {
        self.thought_noise.unwrap_or(config.thought_noise)
    }

    /// The stage's data mixing probability in a run with `config`.
    pub fn mixing(&self, config: &TrainConfig) -> f64 {
        self.mix.unwrap_or(config.mix)
    }

    /// What one epoch of this stage draws: indices into `train`, each problem once plus its
    /// [`StagePlan::repeat_nines`] copies, in index order.
    pub fn epoch_pool(&self, train: &[Problem]) -> Vec<usize> {
        let extra = self.repeat_nines.unwrap_or(0);
        train
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                let copies = 1 + extra * p.nine_columns().saturating_sub(1);
                std::iter::repeat_n(i, copies)
            })
            .collect()
    }
}

/// The most extra copies per 9-sum column a stage may ask for (a 4-digit problem then appears
/// at most 301 times an epoch).
pub const MAX_REPEAT_NINES: usize = 100;

/// The most validation checks in a row `val_confirm` may ask for.
pub const MAX_VAL_CONFIRM: usize = 100;

/// Everything a training run depends on. The default reproduces notes/recipe.md for the
/// shipped 4-layer, width-128, 4-head model: the curriculum 0..5 with c = 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub model: ModelConfig,
    pub data: DataConfig,
    /// Continuous thoughts per replaced step (the paper's c).
    pub thoughts_per_step: usize,
    /// Position ids of every stage ([`coconut_core::positions`]) with their options, the flat
    /// fields `positions`, `ids_ahead` (with coupled ids, each position from `<bot>` on takes the
    /// column of what follows it: `coconut_core::positions` "Ahead") and `operand_pad` (with
    /// coupled ids, every stage writes both operands with the longer one's digits and this many
    /// more, leading zeros filling them, so no column misses a digit; validation and evaluation
    /// write this many; the manifest's stage entry says `"operand_pad": k`). An option of coupled
    /// ids with absolute ones is refused as the file or the flags are read.
    #[serde(flatten)]
    pub positions: PositionIds,
    /// With coupled ids, each training example's column ids start at an offset drawn uniformly
    /// from `0..=max_position_offset` (a pure function of seed, stage and step), so the ids of
    /// columns beyond the trained lengths are trained too. Validation and evaluation use 0.
    #[serde(default)]
    pub max_position_offset: usize,
    /// Which steps the latent stages replace: the first (Coconut's, the default) or the last
    /// (the published attempt's, kept to compare with; absolute ids only).
    #[serde(default)]
    pub latent_order: LatentOrder,
    /// The order every stage writes the answer's digits in (most significant first, the
    /// default, or units first).
    #[serde(default)]
    pub answer_order: AnswerOrder,
    /// With coupled ids, each training example spaces its columns by extra gaps drawn uniformly
    /// from `0..=max_column_gap` per column (a pure function of seed, stage and step), so that
    /// ids further apart than the trained columns are trained as different columns. Validation
    /// and evaluation space them one apart.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_column_gap: usize,
    /// With coupled ids, each training example gives each latent column up to this many
    /// thoughts more than the stage's c (drawn uniformly per column, a pure function of seed,
    /// stage and step), so a column's thoughts do not always sit at the same slot of the chain
    /// (an experiment). Validation and evaluation use c.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_extra_thoughts: usize,
    /// With coupled ids, each training answer is written with up to this many extra leading
    /// zeros above the carry column (drawn uniformly per example, a pure function of seed,
    /// stage and step), so the number of digits written does not tell where the answer ends
    /// (an experiment; layouts mixed in from earlier stages stay unpadded). Validation and
    /// evaluation write none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_answer_pad: usize,
    /// With padded operands, each training example writes them with `0..=max_operand_pad`
    /// columns of leading zeros instead of `operand_pad` (drawn uniformly per example, a pure
    /// function of seed, stage and step), so the chain of columns is trained longer than the
    /// trained numbers are (layouts mixed in from earlier stages are padded the same way).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_operand_pad: usize,
    /// The standard deviation of Gaussian noise added, in training only, to every thought fed
    /// back, as a fraction of the thought's root mean square (an experiment, CPU engine only): a
    /// chain of thoughts that still computes through the noise must carry what it needs with a
    /// margin, so the drift of a longer chain than any trained does not flip it. 0: none.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub thought_noise: f64,
    /// The probability of GPT-2's dropout in training, at the input embeddings and at each
    /// block's attention and MLP outputs (CPU engine only; attention probabilities are not
    /// dropped): a regularizer, measured as a lever of length generalization. Evaluation never
    /// drops. 0: none.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub dropout: f64,
    /// The decay of a moving average of the weights kept within each stage
    /// ([`crate::average`]), in (0, 1): validation, each stage's weights and the next stage's
    /// start are the average's. `None`: the weights as the optimizer leaves them. (On the candle
    /// path every step copies the weights to the host for it: fine for this project's models,
    /// slow for a GPT-2 on a GPU.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
    /// The stages to train, in order, each continuing from the previous one's weights.
    pub stages: Vec<StagePlan>,
    pub batch_size: usize,
    /// Peak learning rate of every stage.
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub adam_eps: f64,
    /// Linear warmup steps at the start of each stage (capped at a tenth of the stage).
    pub warmup_steps: u64,
    /// The cosine decay ends at this fraction of the peak.
    pub min_lr_ratio: f64,
    /// Global gradient-norm clipping.
    pub grad_clip: f64,
    /// Seed of the initial weights and of the data order.
    pub seed: u64,
    /// Stop (after a checkpoint) once this many seconds of training have passed in this process.
    pub time_budget_s: Option<f64>,
    /// Write a checkpoint every this many steps (and after every stage).
    pub checkpoint_every: u64,
    /// Write a metrics line every this many steps.
    pub log_every: u64,
    /// A loss above this (or not finite) stops training: the run diverged.
    pub max_loss: f64,
    /// Validation problems greedily evaluated after each stage, and every `val_every` steps of
    /// a stage with `until_val` (0: none).
    pub val_problems: usize,
    /// Steps between the validation checks of stages that end when learned (0: never).
    pub val_every: u64,
    /// How many validation checks in a row must reach a stage's `until_val` to end it (1: the
    /// first that does). One check of a few thousand problems can read 100% one step after
    /// 97%; asking for several in a row ends a stage where its accuracy has settled.
    pub val_confirm: u64,
    /// Coconut's data mixing: in latent stage k, each example takes the layout of a uniformly
    /// drawn earlier stage 0..k with this probability (CPU engine only).
    pub mix: f64,
    /// Which implementation trains.
    pub engine: Engine,
    /// The CPU engine splits each batch into this many shards of about equal rows, run in
    /// parallel. It fixes the order of the gradient sums, so it is a setting of the run (results
    /// do not depend on how many cores run it), not the number of cores.
    pub cpu_shards: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_zero_f64(x: &f64) -> bool {
    *x == 0.0
}

impl Default for TrainConfig {
    fn default() -> Self {
        let epochs = [8.0, 4.0, 4.0, 4.0, 4.0, 6.0];
        TrainConfig {
            model: ModelConfig::default(),
            data: DataConfig::default(),
            thoughts_per_step: 1,
            positions: PositionIds::Absolute,
            max_position_offset: 0,
            latent_order: LatentOrder::First,
            answer_order: AnswerOrder::MostSignificantFirst,
            max_column_gap: 0,
            max_extra_thoughts: 0,
            max_answer_pad: 0,
            max_operand_pad: 0,
            thought_noise: 0.0,
            dropout: 0.0,
            ema_decay: None,
            stages: epochs
                .iter()
                .enumerate()
                .map(|(k, &epochs)| StagePlan::new(format!("stage{k}"), epochs))
                .collect(),
            batch_size: 256,
            lr: 1e-3,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.98,
            adam_eps: 1e-8,
            warmup_steps: 100,
            min_lr_ratio: 0.1,
            grad_clip: 1.0,
            seed: 1234,
            time_budget_s: None,
            checkpoint_every: 200,
            log_every: 10,
            max_loss: 20.0,
            val_problems: 500,
            val_every: 0,
            val_confirm: 1,
            mix: 0.0,
            engine: Engine::Auto,
            cpu_shards: 2,
        }
    }
}

impl TrainConfig {
    /// The most steps a problem in the training range needs: the all-latent stage's k.
    pub fn max_steps(&self) -> usize {
        max_steps(self.data.max_digits)
    }

    /// The stage a plan entry names, with this run's c and thought budget.
    pub fn stage(&self, plan: &StagePlan) -> Result<Stage> {
        let kind: StageKind = plan.stage.parse()?;
        let positions = Positions::new(self.positions, self.latent_order)?;
        let with_settings = |stage: Stage| {
            stage
                .with_positions(positions)
                .with_answer_order(self.answer_order)
        };
        Ok(match kind {
            StageKind::Latent { k } => {
                ensure!(
                    k <= self.max_steps(),
                    "{}: problems of at most {} digits have at most {} steps",
                    plan.stage,
                    self.data.max_digits,
                    self.max_steps()
                );
                with_settings(Stage::latent(k, self.thoughts_per_step, self.max_steps()))
            }
            kind => with_settings(Stage::latent(0, self.thoughts_per_step, self.max_steps()))
                .with_kind(kind),
        })
    }

    /// Whether the CPU engine trains on `device`.
    pub fn uses_cpu_engine(&self, device: &candle_core::Device) -> bool {
        match self.engine {
            Engine::Auto => device.is_cpu(),
            Engine::Cpu => true,
            Engine::Candle => false,
        }
    }

    /// Optimizer steps of a stage over `n_train` problems: its epochs of `batch_size` batches,
    /// rounded up, at least one.
    pub fn total_steps(&self, plan: &StagePlan, n_train: usize) -> u64 {
        let steps_per_epoch = n_train.div_ceil(self.batch_size) as u64;
        ((plan.epochs * steps_per_epoch as f64).ceil() as u64).max(1)
    }

    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.adam_eps,
            weight_decay: self.weight_decay,
            decay_all: false,
        }
    }

    /// Refuses settings that cannot train.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        ensure!(
            self.model.vocab_size == coconut_core::tokenizer::VOCAB.len(),
            "vocab_size must be the tokenizer's {}",
            coconut_core::tokenizer::VOCAB.len()
        );
        ensure!(!self.stages.is_empty(), "no stage to train");
        self.validate_plans()?;
        ensure!(
            self.thoughts_per_step >= 1,
            "thoughts_per_step must be at least 1"
        );
        self.validate_numbers()?;
        self.validate_positions()?;
        self.data.validate().context("data")?;
        Ok(())
    }

    /// The checks of each stage's plan.
    fn validate_plans(&self) -> Result<()> {
        for (i, plan) in self.stages.iter().enumerate() {
            ensure!(
                !self.stages[..i].iter().any(|p| p.stage == plan.stage),
                "{} is listed twice in the stages: a stage is trained once",
                plan.stage
            );
            self.stage(plan)?;
            ensure!(
                plan.epochs > 0.0 && plan.epochs.is_finite(),
                "{}: epochs must be positive",
                plan.stage
            );
            ensure!(
                plan.peak_lr(self) > 0.0 && plan.peak_lr(self).is_finite(),
                "{}: the learning rate must be positive, not {}",
                plan.stage,
                plan.peak_lr(self)
            );
            ensure!(
                (0.0..=1.0).contains(&plan.mixing(self)),
                "{}: mix is a probability in [0, 1], not {}",
                plan.stage,
                plan.mixing(self)
            );
            let noise = plan.thought_noise_std(self);
            ensure!(
                noise.is_finite() && noise >= 0.0,
                "{}: thought_noise is a standard deviation (finite, at least 0), not {noise}",
                plan.stage
            );
            let dropout = plan.dropout_rate(self);
            ensure!(
                (0.0..1.0).contains(&dropout),
                "{}: dropout is a probability in [0, 1), not {dropout}",
                plan.stage
            );
            ensure!(
                plan.repeat_nines.unwrap_or(0) <= MAX_REPEAT_NINES,
                "{}: repeat_nines is at most {MAX_REPEAT_NINES} copies per column, not {}",
                plan.stage,
                plan.repeat_nines.unwrap_or(0)
            );
            if let Some(goal) = plan.until_val {
                ensure!(
                    goal > 0.0 && goal <= 100.0,
                    "{}: until_val is a percentage in (0, 100], not {goal}",
                    plan.stage
                );
                ensure!(
                    self.val_every >= 1 && self.val_problems >= 1,
                    "{}: until_val needs val_every and val_problems",
                    plan.stage
                );
            }
        }
        Ok(())
    }

    /// The checks of the settings that are numbers of the whole run (sizes, rates, budgets).
    fn validate_numbers(&self) -> Result<()> {
        ensure!(self.batch_size >= 1, "batch_size must be at least 1");
        ensure!(
            (0.0..=1.0).contains(&self.weight_decay),
            "weight_decay is from 0 to 1, not {}",
            self.weight_decay
        );
        if let Some(budget) = self.time_budget_s {
            ensure!(
                budget.is_finite() && budget >= 0.0,
                "time_budget_s is a number of seconds (finite, at least 0), not {budget}"
            );
        }
        ensure!(
            self.val_problems <= self.data.n_val,
            "val_problems ({}) is more than the validation set holds (n_val = {})",
            self.val_problems,
            self.data.n_val
        );
        ensure!(
            self.ema_decay.is_none_or(|d| d > 0.0 && d < 1.0),
            "ema_decay is a decay in (0, 1), not {}",
            self.ema_decay.unwrap_or_default()
        );
        ensure!(
            (1..=MAX_VAL_CONFIRM as u64).contains(&self.val_confirm),
            "val_confirm is a count of validation checks, 1 to {MAX_VAL_CONFIRM}, not {}",
            self.val_confirm
        );
        ensure!(self.cpu_shards >= 1, "cpu_shards must be at least 1");
        ensure!(
            (0.0..=1.0).contains(&self.mix),
            "mix is a probability in [0, 1], not {}",
            self.mix
        );
        ensure!(self.data.n_train >= 1, "no training problems");
        ensure!(self.lr > 0.0 && self.lr.is_finite(), "lr must be positive");
        ensure!(
            self.checkpoint_every >= 1 && self.log_every >= 1,
            "intervals must be positive"
        );
        Ok(())
    }

    /// The checks of the position-id settings.
    fn validate_positions(&self) -> Result<()> {
        // The run's widest padding and each stage's own, named as a file would name them.
        let maxima = std::iter::once(("max_operand_pad".to_string(), self.max_operand_pad)).chain(
            self.stages.iter().filter_map(|plan| {
                let max = plan.max_operand_pad?;
                Some((format!("{}: max_operand_pad", plan.stage), max))
            }),
        );
        for (name, max) in maxima {
            match self.positions.operand_pad() {
                Some(k) => ensure!(
                    max == 0 || k <= max,
                    "operand_pad {k} is more than {name} {max}: inference would write a padding \
                     training never drew"
                ),
                None => ensure!(max == 0, "{name} needs padded operands (operand_pad)"),
            }
        }
        let widest_pad = self
            .stages
            .iter()
            .map(|plan| plan.widest_operand_pad(self))
            .max()
            .unwrap_or(0);
        Positions::new(self.positions, self.latent_order)?;
        match self.positions {
            PositionIds::Absolute => ensure!(
                self.max_position_offset == 0
                    && self.max_column_gap == 0
                    && self.max_extra_thoughts == 0
                    && self.max_answer_pad == 0,
                "max_position_offset, max_column_gap, max_extra_thoughts and max_answer_pad \
                 need coupled positions"
            ),
            PositionIds::Coupled(ids) => {
                // The highest id: the carry column of the longest problem (ahead, the column after
                // it) at the largest offset, with the largest gap below each column.
                // Saturating: settings files may hold any number, and an overflow must not wrap.
                let top = (self.data.max_digits + usize::from(ids.ahead))
                    .saturating_add(self.max_answer_pad)
                    .saturating_add(widest_pad);
                let highest = (self.max_position_offset.saturating_add(1))
                    .saturating_add(top.saturating_mul(self.max_column_gap.saturating_add(1)));
                ensure!(
                    highest < self.model.n_positions,
                    "coupled ids reach {highest} with max_position_offset {}, max_column_gap {} \
                     and {} digits: n_positions ({}) must exceed it",
                    self.max_position_offset,
                    self.max_column_gap,
                    self.data.max_digits,
                    self.model.n_positions
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coconut_core::stage::ColumnIds;

    #[test]
    fn default_is_the_recipe_and_round_trips() {
        let c = TrainConfig::default();
        c.validate().unwrap();
        assert_eq!(c.stages.len(), 6);
        assert_eq!(c.stage(&c.stages[5]).unwrap().thoughts(), 5);
        assert!(c.stage(&c.stages[5]).unwrap().is_all_latent());
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), c);
        // Partial files fill in the defaults.
        let partial: TrainConfig = serde_json::from_str(r#"{"lr": 0.002}"#).unwrap();
        assert_eq!(partial.lr, 0.002);
        assert_eq!(partial.batch_size, 256);
    }

    #[test]
    fn coupled_positions_reach_every_stage_and_fit_the_table() {
        let mut c = TrainConfig {
            positions: PositionIds::COUPLED,
            max_position_offset: 8,
            ..TrainConfig::default()
        };
        c.validate().unwrap();
        for plan in &c.stages {
            assert_eq!(c.stage(plan).unwrap().positions, Positions::COUPLED);
        }
        c.max_position_offset = c.model.n_positions;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("n_positions"));
        c.positions = PositionIds::Absolute;
        assert!(c.validate().unwrap_err().to_string().contains("coupled"));
        // The last steps thought with column ids: refused.
        c.positions = PositionIds::COUPLED;
        c.max_position_offset = 8;
        c.latent_order = LatentOrder::Last;
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("the last-steps order has absolute position ids only"),
            "{e}"
        );
        assert!(c.stage(&c.stages[1]).is_err());
    }

    /// The rates a stage may set for itself are checked there and for the whole run alike.
    #[test]
    fn dropout_and_thought_noise_are_checked_for_the_run_and_each_stage() {
        struct Rate {
            on_run: fn(&mut TrainConfig, f64),
            on_stage: fn(&mut TrainConfig, f64),
            ok: &'static [f64],
            bad: &'static [f64],
            says: &'static str,
        }
        let cases = [
            Rate {
                on_run: |c, v| c.dropout = v,
                on_stage: |c, v| c.stages[5].dropout = Some(v),
                ok: &[0.0, 0.1, 0.5],
                bad: &[1.0, -0.1, f64::NAN, f64::INFINITY],
                says: "dropout is a probability in [0, 1)",
            },
            Rate {
                on_run: |c, v| c.thought_noise = v,
                on_stage: |c, v| c.stages[5].thought_noise = Some(v),
                ok: &[0.0, 0.3, 2.0],
                bad: &[-0.1, f64::NAN, f64::INFINITY],
                says: "thought_noise is a standard deviation",
            },
        ];
        for Rate {
            on_run,
            on_stage,
            ok,
            bad,
            says,
        } in cases
        {
            for &v in ok {
                let mut c = TrainConfig::default();
                on_run(&mut c, v);
                c.validate().unwrap();
                on_stage(&mut c, v);
                c.validate().unwrap();
            }
            for &v in bad {
                for set in [on_run, on_stage] {
                    let mut c = TrainConfig::default();
                    set(&mut c, v);
                    let e = c.validate().unwrap_err().to_string();
                    assert!(e.contains(says), "{v}: {e}");
                }
            }
        }
    }

    #[test]
    fn ahead_ids_and_gaps_reach_every_stage_and_fit_the_table() {
        // Offset 8, 4 digits: the column after the carry column (5) spaced by gaps of up to 3.
        let mut c = TrainConfig {
            positions: PositionIds::Coupled(ColumnIds {
                ahead: true,
                operand_pad: None,
            }),
            max_position_offset: 8,
            max_column_gap: 3,
            ..TrainConfig::default()
        };
        c.model.n_positions = 8 + 1 + 5 * 4 + 1;
        c.validate().unwrap();
        for plan in &c.stages {
            assert!(c.stage(plan).unwrap().positions.ahead());
        }
        c.model.n_positions -= 1;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("max_column_gap 3"));
        for (gap, extra, pad) in [(1, 0, 0), (0, 1, 0), (0, 0, 1)] {
            let absolute = TrainConfig {
                max_column_gap: gap,
                max_extra_thoughts: extra,
                max_answer_pad: pad,
                ..TrainConfig::default()
            };
            assert!(absolute
                .validate()
                .unwrap_err()
                .to_string()
                .contains("coupled"));
        }
    }

    #[test]
    fn padded_operands_are_coupled_drawn_around_what_inference_writes_and_fit_the_table() {
        let padded_by = |pad| {
            PositionIds::Coupled(ColumnIds {
                ahead: false,
                operand_pad: pad,
            })
        };
        let padded = TrainConfig {
            positions: padded_by(Some(2)),
            max_operand_pad: 4,
            ..TrainConfig::default()
        };
        padded.validate().unwrap();
        let stage = padded.stage(&padded.stages[5]).unwrap();
        assert_eq!(stage.positions.operand_pad(), Some(2));
        let refused = |c: TrainConfig| c.validate().unwrap_err().to_string();
        // Padded operands with absolute ids cannot be written down; a file saying so is refused
        // as it is read.
        let mut json = serde_json::to_value(&padded).unwrap();
        json["positions"] = "absolute".into();
        let e = serde_json::from_value::<TrainConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("padded operands are written with coupled positions"),
            "{e}"
        );
        let e = refused(TrainConfig {
            positions: padded_by(Some(5)),
            ..padded.clone()
        });
        assert!(
            e.contains("operand_pad 5 is more than max_operand_pad 4"),
            "{e}"
        );
        let e = refused(TrainConfig {
            positions: padded_by(None),
            ..padded.clone()
        });
        assert!(e.contains("max_operand_pad needs padded operands"), "{e}");
        // The widest drawn padding counts towards the highest id: 4 digits + 4 columns of
        // padding at offset 0 reach id 9, so a table of 9 rows is refused and one of 10 is not.
        let table = |n_positions| TrainConfig {
            model: ModelConfig {
                n_positions,
                ..padded.model.clone()
            },
            ..padded.clone()
        };
        assert!(refused(table(9)).contains("coupled ids reach 9"));
        table(10).validate().unwrap();
        // A stage's own padding is held to the same rules and counts towards the table too.
        let stage5_pad = |max, c: &TrainConfig| {
            let mut c = c.clone();
            c.stages[5].max_operand_pad = Some(max);
            c
        };
        assert!(refused(stage5_pad(6, &table(10))).contains("coupled ids reach 11"));
        stage5_pad(6, &table(12)).validate().unwrap();
        let e = refused(stage5_pad(1, &padded));
        assert!(
            e.contains("operand_pad 2 is more than stage5: max_operand_pad 1"),
            "{e}"
        );
        let e = refused(stage5_pad(
            3,
            &TrainConfig {
                positions: padded_by(None),
                max_operand_pad: 0,
                ..padded.clone()
            },
        ));
        assert!(
            e.contains("stage5: max_operand_pad needs padded operands"),
            "{e}"
        );
    }

    #[test]
    fn a_settings_file_is_held_to_the_limits_of_the_flags() {
        let refused = |change: &dyn Fn(&mut TrainConfig)| {
            let mut c = TrainConfig::default();
            change(&mut c);
            c.validate().unwrap_err().to_string()
        };
        let e = refused(&|c| c.stages[1].stage = "stage0".into());
        assert!(e.contains("stage0 is listed twice"), "{e}");
        assert!(refused(&|c| c.weight_decay = -5.0).contains("weight_decay is from 0 to 1"));
        assert!(refused(&|c| c.weight_decay = f64::NAN).contains("weight_decay"));
        for budget in [f64::NAN, -1.0, f64::INFINITY] {
            let e = refused(&|c| c.time_budget_s = Some(budget));
            assert!(e.contains("time_budget_s is a number of seconds"), "{e}");
        }
        let e = refused(&|c| c.val_problems = 1_000_000_000);
        assert!(
            e.contains("more than the validation set holds (n_val = 2000)"),
            "{e}"
        );
        // Coupled-id settings far beyond any table: refused, not wrapped around.
        let e = refused(&|c| {
            c.positions = PositionIds::COUPLED;
            c.max_position_offset = usize::MAX;
            c.max_column_gap = usize::MAX;
        });
        assert!(e.contains("n_positions"), "{e}");
    }

    #[test]
    fn refuses_stages_out_of_range() {
        let mut c = TrainConfig::default();
        c.stages[0].stage = "stage9".into();
        assert!(c.validate().unwrap_err().to_string().contains("stage9"));
        c.stages[0].stage = "pause".into();
        c.validate().unwrap();
        assert_eq!(c.stage(&c.stages[0]).unwrap().thoughts(), 5);
    }

    #[test]
    fn a_stage_repeats_problems_with_long_carry_chains() {
        let train = [
            Problem::new(347, 285),   // no 9-sum column: once
            Problem::new(3206, 2795), // two: 1 + 3 copies
            Problem::new(1453, 8546), // four: 1 + 3 * 3
            Problem::new(9, 5),       // one: once
        ];
        let mut c = TrainConfig::default();
        assert_eq!(c.stages[4].epoch_pool(&train), [0, 1, 2, 3]);
        c.stages[4].repeat_nines = Some(3);
        let pool = c.stages[4].epoch_pool(&train);
        let count = |i| pool.iter().filter(|&&j| j == i).count();
        assert_eq!([count(0), count(1), count(2), count(3)], [1, 4, 10, 1]);
        c.validate().unwrap();
        c.stages[4].repeat_nines = Some(MAX_REPEAT_NINES + 1);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("repeat_nines"));
    }
}
