//! The browser demo's engine side, for the page in `web/js/`: it loads and verifies the weights
//! folder, runs a stage on WebGPU through our WGSL kernels (falling back to the reference engine,
//! compiled to wasm, when WebGPU is missing or fails) and returns, per solve, the JSON the page
//! animates (`view::SolveView`).
//!
//! On start the module puts one [`App`] at `window.coconut` and fires `coconut-ready`. Every
//! method returns an error value rather than panicking; a panic (a bug) is reported to the page
//! through a `coconut-panic` event so that it can say so and offer a reload instead of dying.

pub mod operand;
pub mod seed;
pub mod session;
pub mod stages;
pub mod view;

use coconut_core::tokenizer::Tokenizer;
use coconut_core::Stage;
use coconut_shaders::{Gpu, GpuError, GpuOptions, WgpuEngine};
use js_sys::Promise;
use seed::SeedSession;
use session::{Measurement, Session};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

#[derive(Default)]
struct State {
    session: Option<Session>,
    /// A folder of the seed's family (an imported GPT-2), instead of `session`.
    seed: Option<SeedSession>,
    gpu: Option<Arc<Gpu>>,
    /// One WGSL engine per stage, made on first use; taken out while a solve awaits it.
    engines: HashMap<String, WgpuEngine>,
    /// Why the page is on the reference engine, when WebGPU was wanted.
    notice: Option<String>,
    /// The thought-edit measurement in progress (`measureStart`).
    measurement: Option<Measurement>,
}

impl State {
    fn session(&self) -> Result<&Session, JsValue> {
        if self.seed.is_some() {
            return Err(error(
                "this is the seed's GPT-2: the page solves and tests it, and coconut intervene \
                 edits its thoughts",
            ));
        }
        self.session
            .as_ref()
            .ok_or_else(|| error("the weights are not loaded yet"))
    }

    fn manifest(&self) -> Result<&coconut_core::manifest::Manifest, JsValue> {
        match &self.seed {
            Some(seed) => Ok(&seed.manifest),
            None => Ok(&self.session()?.manifest),
        }
    }

    /// Drops WebGPU; `reason` says why when it was wanted and failed.
    fn use_reference(&mut self, reason: Option<String>) {
        self.gpu = None;
        self.engines.clear();
        self.notice = reason;
    }
}

/// The demo's engine, one per page.
#[wasm_bindgen]
pub struct App {
    state: Rc<RefCell<State>>,
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

#[wasm_bindgen]
impl App {
    #[wasm_bindgen(constructor)]
    pub fn new() -> App {
        App {
            state: Rc::new(RefCell::new(State::default())),
        }
    }

    /// Checks `manifest.json` (file names inside the folder, numbers consistent with the model)
    /// before the page fetches any file it names.
    #[wasm_bindgen(js_name = checkManifest)]
    pub fn check_manifest(&self, manifest_json: &str) -> Result<(), JsValue> {
        Session::check_manifest(manifest_json)
            .map(|_| ())
            .map_err(error)
    }

    /// Reads `manifest.json` and the tokenizer (checked against the manifest's sha256).
    pub fn load(&self, manifest_json: &str, tokenizer: &[u8]) -> Result<(), JsValue> {
        let manifest = Session::check_manifest(manifest_json).map_err(error)?;
        let state = if manifest.family.layout == coconut_core::family::LayoutFamily::Seed {
            State {
                seed: Some(SeedSession::new(manifest, tokenizer).map_err(error)?),
                ..State::default()
            }
        } else {
            State {
                session: Some(Session::new(manifest_json, tokenizer).map_err(error)?),
                ..State::default()
            }
        };
        *self.state.borrow_mut() = state;
        Ok(())
    }

    /// Verifies a stage file (size, sha256, tensors) and loads it.
    #[wasm_bindgen(js_name = addStage)]
    pub fn add_stage(&self, id: &str, bytes: &[u8]) -> Result<(), JsValue> {
        let mut state = self.state.borrow_mut();
        state.engines.remove(id);
        if let Some(seed) = state.seed.as_mut() {
            return seed.add_stage(id, bytes).map_err(error);
        }
        state
            .session
            .as_mut()
            .ok_or_else(|| error("load the manifest first"))?
            .add_stage(id, bytes)
            .map_err(error)
    }

    /// Verifies a loaded stage's probes file (size, sha256, shapes) and keeps it, so that its
    /// thoughts show what the probes read.
    #[wasm_bindgen(js_name = addProbes)]
    pub fn add_probes(&self, id: &str, bytes: &[u8]) -> Result<(), JsValue> {
        if let Some(seed) = self.state.borrow_mut().seed.as_mut() {
            return seed.add_probes(id, bytes).map_err(error);
        }
        self.state
            .borrow_mut()
            .session
            .as_mut()
            .ok_or_else(|| error("load the manifest first"))?
            .add_probes(id, bytes)
            .map_err(error)
    }

    /// Keeps the carry flips measured on the folder (`eval/flips.json`, optional): the edit
    /// controls say what flipping a carry did at each thought, for the stages whose probes the
    /// rows match.
    #[wasm_bindgen(js_name = addFlips)]
    pub fn add_flips(&self, json: &str) -> Result<(), JsValue> {
        self.state
            .borrow_mut()
            .session
            .as_mut()
            .ok_or_else(|| error("load the manifest first"))?
            .add_flips(json)
            .map_err(error)
    }

    /// The model as the manifest describes it, as JSON `{n_layer, n_head, n_embd, n_params,
    /// vocab_size, max_digits, family}` (`family`: `own` or `seed`): the page states no model
    /// fact it did not read here.
    pub fn model(&self) -> Result<String, JsValue> {
        let state = self.state.borrow();
        let m = state.manifest()?;
        let facts = serde_json::json!({
            "n_layer": m.model.n_layer,
            "n_head": m.model.n_head,
            "n_embd": m.model.n_embd,
            "n_params": m.model.n_params(),
            "vocab_size": m.model.vocab_size,
            "max_digits": m.max_digits,
            "family": if state.seed.is_some() { "seed" } else { "own" },
        });
        Ok(facts.to_string())
    }

    /// Opens WebGPU; resolves to the adapter's description, rejects with the reason it cannot
    /// be used (the page then stays on the reference engine and says why).
    #[wasm_bindgen(js_name = useWebGpu)]
    pub fn use_webgpu(&self) -> Promise {
        let state = self.state.clone();
        if state.borrow().seed.is_some() {
            let reason = "the seed's GPT-2 runs on the reference engine in the page (its WGSL \
                          path runs in coconut solve --engine wgpu)";
            state.borrow_mut().use_reference(Some(reason.into()));
            return Promise::reject(&error(reason));
        }
        future_to_promise(async move {
            match Gpu::new(&GpuOptions::default()).await {
                Ok(gpu) => {
                    let summary = gpu.adapter.to_string();
                    let mut state = state.borrow_mut();
                    #[allow(clippy::arc_with_non_send_sync)]
                    let gpu = Arc::new(gpu);
                    state.gpu = Some(gpu);
                    state.engines.clear();
                    state.notice = None;
                    Ok(JsValue::from_str(&summary))
                }
                Err(e) => {
                    let reason = e.to_string();
                    state.borrow_mut().use_reference(Some(reason.clone()));
                    Err(error(reason))
                }
            }
        })
    }

    /// Switches to the reference engine.
    #[wasm_bindgen(js_name = useReference)]
    pub fn use_reference(&self) {
        self.state.borrow_mut().use_reference(None);
    }

    /// `webgpu` or `reference`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        let webgpu = self.state.borrow().gpu.is_some();
        if webgpu { "webgpu" } else { "reference" }.into()
    }

    /// Why WebGPU is not in use, if it was wanted and failed.
    #[wasm_bindgen(getter)]
    pub fn notice(&self) -> Option<String> {
        self.state.borrow().notice.clone()
    }

    /// What each stage is, as JSON: `[{id, kind, k, allLatent, label, about}]` (see
    /// [`stages::StageText`]).
    pub fn stages(&self) -> Result<String, JsValue> {
        let state = self.state.borrow();
        let texts = stages::stage_texts(state.manifest()?);
        serde_json::to_string(&texts).map_err(error)
    }

    /// The two fields' verdicts for `stage` as JSON `{"a": message|null, "b": message|null,
    /// "summary": the line for the page's error box, empty when both are fine}`.
    pub fn check(&self, a: &str, b: &str, stage: &str) -> Result<String, JsValue> {
        let state = self.state.borrow();
        let errors = match &state.seed {
            Some(seed) => seed.problem(a, b).err(),
            None => state.session()?.problem(a, b, stage).err(),
        }
        .unwrap_or_default();
        let verdict =
            serde_json::json!({"a": errors.a, "b": errors.b, "summary": errors.summary()});
        serde_json::to_string(&verdict).map_err(error)
    }

    /// The first `n` held-out test problems (the set the manifest's figures were measured on),
    /// as JSON `[["a", "b"], ...]`, the fields' text.
    #[wasm_bindgen(js_name = testProblems)]
    pub fn test_problems(&self, n: usize) -> Result<String, JsValue> {
        let state = self.state.borrow();
        let test = test_set(&state)?;
        let pairs: Vec<[String; 2]> = test.iter().take(n).map(fields).collect();
        serde_json::to_string(&pairs).map_err(error)
    }

    /// A held-out test problem at random, as JSON `["a", "b"]`: one the model never saw.
    #[wasm_bindgen(js_name = randomProblem)]
    pub fn random_problem(&self) -> Result<String, JsValue> {
        let state = self.state.borrow();
        let test = test_set(&state)?;
        let index = (js_sys::Math::random() * test.len() as f64) as usize;
        let problem = test
            .get(index.min(test.len().saturating_sub(1)))
            .ok_or_else(|| error("the test set is empty"))?;
        serde_json::to_string(&fields(problem)).map_err(error)
    }

    /// Solves `a + b` on a stage as trained and with its thoughts edited by `patches` (`J=zero`,
    /// `J=from:A+B`, `J=flip:C`; `;`-separated) on the reference engine: an `EditedView` as
    /// JSON, the fields of `coconut intervene --json`, or a message saying what is wrong.
    #[wasm_bindgen(js_name = solveEdited)]
    pub fn solve_edited(
        &self,
        a: &str,
        b: &str,
        stage: &str,
        patches: &str,
    ) -> Result<String, JsValue> {
        let state = self.state.borrow();
        let session = state
            .session
            .as_ref()
            .ok_or_else(|| error("load the manifest first"))?;
        let problem = session
            .problem(a, b, stage)
            .map_err(|e| error(e.summary()))?;
        let edited = session
            .solve_edited(stage, &problem, patches)
            .map_err(error)?;
        serde_json::to_string(&edited).map_err(error)
    }

    /// Starts measuring what editing a stage's thoughts does over held-out problems, with the
    /// same code and numbers as the command line: `kind` `patching` (`coconut intervene
    /// --measure n`: n pairs) or `flips` (`--measure-flips n`: n problems). `measureMore` counts.
    #[wasm_bindgen(js_name = measureStart)]
    pub fn measure_start(&self, stage: &str, kind: &str, n: usize) -> Result<(), JsValue> {
        let mut state = self.state.borrow_mut();
        let m = state
            .session()?
            .start_measurement(stage, kind, n)
            .map_err(error)?;
        state.measurement = Some(m);
        Ok(())
    }

    /// Counts the next `k` pairs or problems of the measurement started last: JSON `{stage, kind,
    /// done, n, effects}`, `effects` the rows of `--measure-json` counted so far.
    #[wasm_bindgen(js_name = measureMore)]
    pub fn measure_more(&self, k: usize) -> Result<String, JsValue> {
        let mut state = self.state.borrow_mut();
        let mut m = state
            .measurement
            .take()
            .ok_or_else(|| error("no measurement started"))?;
        let progress = state.session()?.measure_more(&mut m, k).map_err(error);
        state.measurement = Some(m);
        serde_json::to_string(&progress?).map_err(error)
    }

    /// Solves the held-out test problems `start .. start + count` on `stage`: one WebGPU
    /// submission for the whole slice (the solver), or the reference engine problem by problem.
    /// Resolves to JSON `{"done", "correct", "engine"}` ("webgpu" or "reference").
    #[wasm_bindgen(js_name = testBatch)]
    pub fn test_batch(&self, stage: String, start: usize, count: usize) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let json = test_batch(&state, &stage, start, count).await?;
            Ok(JsValue::from_str(&json))
        })
    }

    /// Solves `a + b` on a stage; resolves to a `SolveView` as JSON (with per-position internals
    /// when `trace`), rejects with a message for refused input.
    pub fn solve(&self, a: String, b: String, stage: String, trace: bool) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let json = solve(&state, &a, &b, &stage, trace).await?;
            Ok(JsValue::from_str(&json))
        })
    }
}

/// The stage's WGSL engine, taken out of `state` while it works (made on first use), or `None`
/// on the reference engine.
fn take_engine(st: &mut State, id: &str) -> Result<Option<Result<WgpuEngine, GpuError>>, JsValue> {
    let Some(gpu) = st.gpu.clone() else {
        return Ok(None);
    };
    Ok(Some(match st.engines.remove(id) {
        Some(engine) => Ok(engine),
        None => WgpuEngine::on(gpu, &st.session()?.stage(id).map_err(error)?.weights),
    }))
}

/// Runs `job` on stage `id`'s WGSL engine, which it hands back with its result, and keeps the
/// engine for next time. `None`: the page is on the reference engine, or WebGPU failed just now
/// and the page switched to it (and says why); the caller then runs the reference engine.
async fn on_webgpu<T, Job, Done>(
    state: &Rc<RefCell<State>>,
    id: &str,
    job: Job,
) -> Result<Option<T>, JsValue>
where
    Job: FnOnce(WgpuEngine) -> Done,
    Done: std::future::Future<Output = (WgpuEngine, Result<T, GpuError>)>,
{
    let Some(engine) = take_engine(&mut state.borrow_mut(), id)? else {
        return Ok(None);
    };
    let outcome = match engine {
        Ok(engine) => Ok(job(engine).await),
        Err(e) => Err(e),
    };
    let mut st = state.borrow_mut();
    match outcome {
        Ok((engine, Ok(value))) => {
            st.engines.insert(id.to_string(), engine);
            Ok(Some(value))
        }
        Ok((engine, Err(e))) if !e.should_fall_back() => {
            st.engines.insert(id.to_string(), engine);
            Err(error(e.to_string()))
        }
        Ok((_, Err(e))) | Err(e) => {
            st.use_reference(Some(format!(
                "WebGPU failed ({e}); using the reference engine"
            )));
            Ok(None)
        }
    }
}

/// The held-out problems of the loaded folder: this project's test set, or the seed's.
fn test_set(state: &State) -> Result<&[coconut_core::Problem], JsValue> {
    match &state.seed {
        Some(seed) => Ok(seed.test_set()),
        None => state.session()?.test_set().map_err(error),
    }
}

/// The loaded stage's id (the manifest's spelling), stage and the tokenizer.
fn stage_of(
    state: &Rc<RefCell<State>>,
    stage_id: &str,
) -> Result<(String, Stage, Tokenizer), JsValue> {
    let st = state.borrow();
    let session = st.session()?;
    let loaded = session.stage(stage_id).map_err(error)?;
    Ok((
        loaded.entry.id.clone(),
        loaded.stage,
        session.tokenizer.clone(),
    ))
}

async fn test_batch(
    state: &Rc<RefCell<State>>,
    stage_id: &str,
    start: usize,
    count: usize,
) -> Result<String, JsValue> {
    if let Some(seed) = &state.borrow().seed {
        let problems = seed.test_set().iter().skip(start).take(count);
        let problems: Vec<_> = problems.copied().collect();
        let correct = seed.count_correct(stage_id, &problems).map_err(error)?;
        let report = serde_json::json!({"done": problems.len(), "correct": correct,
            "engine": "reference"});
        return Ok(report.to_string());
    }
    let problems = state
        .borrow()
        .session()?
        .test_slice(start, count)
        .map_err(error)?
        .to_vec();
    let (id, stage, tokenizer) = stage_of(state, stage_id)?;
    let report = |correct: usize, engine: &str| {
        serde_json::json!({"done": problems.len(), "correct": correct, "engine": engine})
            .to_string()
    };
    let batch = problems.clone();
    let solved = on_webgpu(state, &id, |mut engine| async move {
        let solved = engine.solve_batch(&tokenizer, &batch, &stage).await;
        (engine, solved)
    })
    .await?;
    if let Some(solutions) = solved {
        return Ok(report(
            solutions.iter().filter(|s| s.is_correct()).count(),
            "webgpu",
        ));
    }
    let st = state.borrow();
    let correct = st
        .session()?
        .count_correct_reference(&id, &problems)
        .map_err(error)?;
    Ok(report(correct, "reference"))
}

async fn solve(
    state: &Rc<RefCell<State>>,
    a: &str,
    b: &str,
    stage_id: &str,
    trace: bool,
) -> Result<String, JsValue> {
    if let Some(seed) = &state.borrow().seed {
        let problem = seed.problem(a, b).map_err(|e| error(e.summary()))?;
        let view = seed.solve(stage_id, &problem, trace).map_err(error)?;
        return serde_json::to_string(&view).map_err(error);
    }
    let problem = state
        .borrow()
        .session()?
        .problem(a, b, stage_id)
        .map_err(|e| error(e.summary()))?;
    let (id, stage, tokenizer) = stage_of(state, stage_id)?;
    let solved = on_webgpu(state, &id, |mut engine| async move {
        let solved = engine.solve(&tokenizer, &problem, &stage, trace).await;
        (engine, solved)
    })
    .await?;
    let st = state.borrow();
    let session = st.session()?;
    let view = match solved {
        Some(solution) => session.view(&id, &solution),
        None => session.solve_reference(stage_id, &problem, trace),
    }
    .map_err(error)?;
    serde_json::to_string(&view).map_err(error)
}

fn error(message: impl ToString) -> JsValue {
    JsError::new(&message.to_string()).into()
}

/// A problem as the two fields show it.
fn fields(problem: &coconut_core::Problem) -> [String; 2] {
    [problem.a.to_string(), problem.b.to_string()]
}

/// Puts the app on `window.coconut` and tells the page it is ready.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        if let Some(window) = web_sys::window() {
            let init = web_sys::CustomEventInit::new();
            init.set_detail(&JsValue::from_str(&info.to_string()));
            if let Ok(event) =
                web_sys::CustomEvent::new_with_event_init_dict("coconut-panic", &init)
            {
                let _ = window.dispatch_event(&event);
            }
        }
    }));
    let window = web_sys::window().ok_or_else(|| error("no window"))?;
    js_sys::Reflect::set(&window, &JsValue::from_str("coconut"), &App::new().into())?;
    let ready = web_sys::CustomEvent::new("coconut-ready")?;
    window.dispatch_event(&ready)?;
    Ok(())
}
