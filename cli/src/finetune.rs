//! `coconut train --init DIR --recipe seed|coconut-lab`: an imported GPT-2 fine-tuned with the
//! seed's curriculum or this project's ([`coconut_trainer::finetune`]); the flags that shape
//! this project's own curriculum are refused here rather than ignored.

use crate::args::TrainArgs;
use anyhow::{bail, ensure, Context, Result};
use coconut_core::weights::WeightDtype;
use coconut_trainer::finetune::{
    finetune, FinetuneRecipe, FinetuneRequest, FinetuneStart, RECIPE_FILE,
};
use coconut_trainer::train::{Observer, Outcome};
use coconut_trainer::TrainConfig;

/// The flags of this project's curriculum given on the command line, by name.
fn curriculum_flags(args: &TrainArgs) -> Vec<&'static str> {
    let given = [
        ("--thoughts-per-step", args.thoughts_per_step.is_some()),
        ("--positions", args.positions.is_some()),
        ("--max-position-offset", args.max_position_offset.is_some()),
        ("--n-positions", args.n_positions.is_some()),
        ("--latent-order", args.latent_order.is_some()),
        ("--answer-order", args.answer_order.is_some()),
        ("--ids-ahead", args.ids_ahead),
        ("--max-column-gap", args.max_column_gap.is_some()),
        ("--max-extra-thoughts", args.max_extra_thoughts.is_some()),
        ("--max-answer-pad", args.max_answer_pad.is_some()),
        ("--operand-pad", args.operand_pad.is_some()),
        ("--max-operand-pad", args.max_operand_pad.is_some()),
        ("--thought-noise", args.thought_noise.is_some()),
        ("--dropout", args.dropout.is_some()),
        ("--ema-decay", args.ema_decay.is_some()),
        ("--val-confirm", args.val_confirm.is_some()),
    ];
    let per_stage = args.stage_settings().map(|(name, s)| (name, s.is_some()));
    let rest = [
        ("--warmup-steps", args.warmup_steps.is_some()),
        ("--n-train", args.n_train.is_some()),
        ("--max-digits", args.max_digits.is_some()),
        ("--layers", args.layers.is_some()),
        ("--width", args.width.is_some()),
        ("--heads", args.heads.is_some()),
        ("--mix", args.mix.is_some()),
    ];
    given
        .iter()
        .chain(&per_stage)
        .chain(&rest)
        .filter(|(_, set)| *set)
        .map(|(name, _)| *name)
        .collect()
}

/// The recipe the flags ask for (--recipe), with --stages, --epochs, --steps, --lr,
/// --batch-size, --micro-batch, --train-problems, --precision, --activation-checkpointing,
/// --weight-decay, --seed, --checkpoint-every and the early stop's --until-val, --val-every and
/// --val-problems applied.
pub(crate) fn recipe(args: &TrainArgs) -> Result<FinetuneRecipe> {
    ensure!(
        args.epochs.is_none() || args.steps.is_none(),
        "--epochs and --steps both set a stage's length: give one"
    );
    let mut recipe = FinetuneRecipe::named(args.recipe.as_deref().unwrap_or("seed"))?;
    let stop_flags = [
        args.until_val.is_some(),
        args.val_every.is_some(),
        args.val_problems.is_some(),
    ];
    match &mut recipe.early_stop {
        Some(stop) => {
            stop.until = args.until_val.unwrap_or(stop.until);
            stop.every = args.val_every.unwrap_or(stop.every);
            stop.problems = args.val_problems.unwrap_or(stop.problems);
        }
        None => ensure!(
            !stop_flags.contains(&true),
            "--until-val, --val-every and --val-problems set the early stop of --recipe \
             coconut-lab; the seed's recipe trains each stage its epochs"
        ),
    }
    if let Some(stages) = &args.stages {
        let base = recipe.stages.clone();
        recipe.stages = stages
            .iter()
            .map(|id| {
                base.iter()
                    .find(|s| s.id() == *id)
                    .cloned()
                    .with_context(|| {
                        format!("--stages: {id} is not a stage of the seed (stage0 to stage3)")
                    })
            })
            .collect::<Result<_>>()?;
    }
    for (i, stage) in recipe.stages.iter_mut().enumerate() {
        if let Some(&e) = args.epochs.as_ref().and_then(|e| e.get(i).or(e.last())) {
            ensure!(
                e.fract() == 0.0 && e >= 1.0,
                "--epochs {e}: the seed's recipe counts whole epochs"
            );
            stage.epochs = e as u32;
        }
        stage.steps = args.steps.or(stage.steps);
        stage.lr = args.lr.unwrap_or(stage.lr);
        stage.problems = args.train_problems.unwrap_or(stage.problems);
        stage.micro_batch = args.micro_batch.or(stage.micro_batch);
        if let Some(batch) = args.batch_size {
            stage.batch = batch;
            stage.group = stage.group.min(batch);
        }
    }
    recipe.candle.precision = args.precision.unwrap_or(recipe.candle.precision);
    recipe.candle.activation_checkpointing |= args.activation_checkpointing;
    recipe.weight_decay = args.weight_decay.unwrap_or(recipe.weight_decay);
    recipe.seed = args.seed.unwrap_or(recipe.seed);
    recipe.checkpoint_every = args.checkpoint_every.unwrap_or(recipe.checkpoint_every);
    recipe.validate()?;
    Ok(recipe)
}

/// Whether `train` is asked to fine-tune: `--init`, or `--resume` of a run that `--init` began.
pub fn asked(args: &TrainArgs) -> bool {
    args.init.is_some() || (args.resume && args.run_dir.join(RECIPE_FILE).exists())
}

/// Runs `train --init` (or `--resume` of such a run).
pub fn run_finetune(
    args: &TrainArgs,
    device: &candle_core::Device,
    observer: &mut dyn Observer,
) -> Result<()> {
    let refused = curriculum_flags(args);
    if !refused.is_empty() {
        bail!(
            "{} shape this project's own curriculum; with --init the recipe sets them (see \
             docs/seed-format.md, section 7)",
            refused.join(", ")
        );
    }
    let start = match &args.init {
        Some(_) if args.resume => bail!(
            "--resume continues {} with its own recipe.json: leave out --init and its settings",
            args.run_dir.display()
        ),
        Some(init) => FinetuneStart::New {
            init: init.clone(),
            init_stage: args.init_stage.clone(),
            recipe: Box::new(recipe(args)?),
            out: args
                .out
                .clone()
                .unwrap_or_else(|| args.run_dir.join("weights")),
            dtype: args.dtype.unwrap_or(WeightDtype::F32),
        },
        None => FinetuneStart::Resume,
    };
    let engine = args.engine.as_deref().unwrap_or("auto");
    let cpu_shards = match engine {
        "cpu" => Some(TrainConfig::default().cpu_shards),
        "candle" => None,
        "auto" => device.is_cpu().then_some(TrainConfig::default().cpu_shards),
        other => bail!("--engine is auto, cpu or candle, not {other}"),
    };
    ensure!(
        cpu_shards.is_none() || device.is_cpu(),
        "--engine cpu runs on the CPU: leave --device at cpu"
    );
    let request = FinetuneRequest {
        start,
        run_dir: args.run_dir.clone(),
        cpu_shards,
        stop_at_step: None,
        time_budget: args.time_budget,
    };
    let report = finetune(&request, device, observer)?;
    match report.outcome {
        Outcome::Finished => observer.message(&format!(
            "every stage is trained ({} steps, {:.1} s)",
            report.progress.global_step, report.progress.seconds
        )),
        Outcome::OutOfTime => observer.message(&format!(
            "out of time after {} steps: continue with --resume",
            report.progress.global_step
        )),
        Outcome::Stopped => {}
    }
    Ok(())
}
