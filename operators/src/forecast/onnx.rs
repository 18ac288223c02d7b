//! ONNX forecast models, run by ONNX Runtime through `ort`.
//!
//! `ort` is built with `load-dynamic`: nothing is downloaded or linked at
//! build time, and the runtime library is opened the first time a query
//! needs it, so only queries using `FORECAST` need it installed. It is found
//! in this order ([`init_runtime`]):
//!
//! 1. the path the caller gives (`carbonflow run --onnxruntime PATH`);
//! 2. the environment variable `CARBONFLOW_ONNXRUNTIME`;
//! 3. the environment variable `ORT_DYLIB_PATH` (ort's own);
//! 4. the project's Python environment, `target/python-env`, where
//!    `scripts/onnxruntime.sh` installs the PyPI `onnxruntime` wheel: looked
//!    for above the working directory and above the running executable.
//!
//! A model file must have one input `context`, float32 `[batch, N]`, and an
//! output `quantiles`, float32 `[batch, H, 3]` (p10, p50, p90): see
//! `docs/forecast.md`. [`OnnxModel`] checks this when it loads a file, and
//! reloads the file when its modification time or size changes, keeping the
//! model in use when the new file is unreadable or has other shapes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::{ForecastModel, ModelError, ModelShape, QUANTILES};

/// The environment variable naming the ONNX Runtime library.
pub const RUNTIME_ENV: &str = "CARBONFLOW_ONNXRUNTIME";

/// The input tensor a forecast model must have.
pub const INPUT_NAME: &str = "context";

/// The output tensor a forecast model must have.
pub const OUTPUT_NAME: &str = "quantiles";

/// How often [`OnnxModel::refresh`] looks at the model file.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The outcome of the one runtime initialisation of the process.
static RUNTIME: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Opens the ONNX Runtime library once per process, found by the search
/// order of the module doc, and returns its path. Later calls return the
/// first outcome whatever `explicit` they pass: a process holds one runtime.
pub fn init_runtime(explicit: Option<&Path>) -> Result<PathBuf, ModelError> {
    let outcome = RUNTIME.get_or_init(|| {
        let path = locate_runtime(explicit)?;
        let builder = ort::init_from(&path).map_err(|error| format!("cannot open ONNX Runtime {}: {error}", path.display()))?;
        builder.with_name("carbonflow").commit();
        Ok(path)
    });
    outcome.clone().map_err(ModelError::Runtime)
}

/// The ONNX Runtime library by the search order of the module doc, without opening it.
pub fn locate_runtime(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let configured = [
        explicit.map(|p| ("--onnxruntime", p.to_path_buf())),
        std::env::var_os(RUNTIME_ENV).map(|p| (RUNTIME_ENV, PathBuf::from(p))),
        std::env::var_os("ORT_DYLIB_PATH").map(|p| ("ORT_DYLIB_PATH", PathBuf::from(p))),
    ];
    if let Some((source, path)) = configured.into_iter().flatten().next() {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{source} names {}, which is not a file", path.display()))
        };
    }
    let starts = [std::env::current_dir().ok(), std::env::current_exe().ok()];
    let mut looked = Vec::new();
    for start in starts.iter().flatten() {
        for dir in start.ancestors() {
            for env in [dir.join("target/python-env"), dir.join("python-env")] {
                if let Some(found) = runtime_in_venv(&env) {
                    return Ok(found);
                }
            }
        }
        looked.push(start.display().to_string());
    }
    Err(format!(
        "ONNX Runtime not found: FORECAST needs libonnxruntime. Run scripts/onnxruntime.sh (it installs the PyPI onnxruntime wheel into \
         target/python-env, where carbonflow finds it), or set {RUNTIME_ENV} to the library file (searched {RUNTIME_ENV}, ORT_DYLIB_PATH, \
         and target/python-env above {})",
        looked.join(" and ")
    ))
}

/// `libonnxruntime.so*` inside a Python virtual environment's onnxruntime package.
fn runtime_in_venv(env: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(env.join("lib")).ok()?;
    let mut found: Vec<PathBuf> = lib
        .flatten()
        .map(|python| python.path().join("site-packages/onnxruntime/capi"))
        .filter_map(|capi| std::fs::read_dir(capi).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so") || n == "libonnxruntime.dylib")
        })
        .collect();
    // The versioned file (libonnxruntime.so.1.31.1) sorts last; prefer it to a symlink.
    found.sort();
    found.pop()
}

/// A forecast model from an ONNX file.
pub struct OnnxModel {
    path: PathBuf,
    session: Session,
    shape: ModelShape,
    /// Modification time and size of the file the session came from.
    stamp: Option<(SystemTime, u64)>,
    last_check: Instant,
}

impl OnnxModel {
    /// Loads and checks the model at `path`, opening the runtime if needed.
    pub fn load(path: &Path) -> Result<OnnxModel, ModelError> {
        init_runtime(None)?;
        let stamp = file_stamp(path);
        let (session, shape) = open(path)?;
        Ok(OnnxModel {
            path: path.to_path_buf(),
            session,
            shape,
            stamp,
            last_check: Instant::now(),
        })
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A session for the file at `path` and its checked shape.
fn open(path: &Path) -> Result<(Session, ModelShape), ModelError> {
    let shown = path.display().to_string();
    let load = |message: String| ModelError::Load { path: shown.clone(), message };
    let bytes = std::fs::read(path).map_err(|error| load(error.to_string()))?;
    // One thread per session: each dataflow worker holds its own session and
    // already has its own core. A pool of one thread per core per worker
    // oversubscribes the machine; on the shared 2-core machine it made a
    // 2,000-context batch slower at the median and twice as slow at p99
    // (BENCHMARKS.md §10). Without a pool nothing spins between batches.
    let build = || -> ort::Result<Session> { Session::builder()?.with_intra_threads(1)?.commit_from_memory(&bytes) };
    let session = build().map_err(|error| load(error.to_string()))?;
    let shape = check_shape(&session).map_err(|message| ModelError::Shape { path: shown, message })?;
    Ok((session, shape))
}

/// The forecast contract: input `context` `[batch, N]` and output
/// `quantiles` `[batch, H, 3]`, both float32, with fixed N and H.
fn check_shape(session: &Session) -> Result<ModelShape, String> {
    let names = |outlets: &[ort::value::Outlet]| outlets.iter().map(|o| o.name().to_owned()).collect::<Vec<_>>().join(", ");
    let [input] = session.inputs() else {
        return Err(format!(
            "expected one input '{INPUT_NAME}' [batch, N] float32, found {} inputs ({})",
            session.inputs().len(),
            names(session.inputs())
        ));
    };
    if input.name() != INPUT_NAME {
        return Err(format!("expected the input to be named '{INPUT_NAME}', found '{}'", input.name()));
    }
    let context = match tensor_dims(input.dtype()).as_deref() {
        Some([_, n]) if *n > 0 => *n as usize,
        _ => {
            return Err(format!(
                "input '{INPUT_NAME}' must be float32 [batch, N] with a fixed N, found {}",
                input.dtype()
            ));
        }
    };
    let Some(output) = session.outputs().iter().find(|o| o.name() == OUTPUT_NAME) else {
        return Err(format!(
            "expected an output named '{OUTPUT_NAME}' [batch, H, {}], found {}",
            QUANTILES.len(),
            names(session.outputs())
        ));
    };
    let horizon = match tensor_dims(output.dtype()).as_deref() {
        Some([_, h, q]) if *h > 0 && *q == QUANTILES.len() as i64 => *h as usize,
        _ => {
            return Err(format!(
                "output '{OUTPUT_NAME}' must be float32 [batch, H, {}] (p10, p50, p90) with a fixed H, found {}",
                QUANTILES.len(),
                output.dtype()
            ));
        }
    };
    Ok(ModelShape { context, horizon })
}

/// The dimensions of a float32 tensor type (`-1` where dynamic).
fn tensor_dims(value: &ValueType) -> Option<Vec<i64>> {
    match value {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } => Some(shape.to_vec()),
        _ => None,
    }
}

impl ForecastModel for OnnxModel {
    fn shape(&self) -> ModelShape {
        self.shape
    }

    fn predict(&mut self, contexts: &[f32], batch: usize, out: &mut Vec<f32>) -> Result<(), ModelError> {
        let run = |message: String| ModelError::Run {
            path: self.path.display().to_string(),
            message,
        };
        let input = TensorRef::from_array_view(([batch, self.shape.context], contexts)).map_err(|e| run(e.to_string()))?;
        let outputs = self.session.run(ort::inputs![INPUT_NAME => input]).map_err(|e| run(e.to_string()))?;
        let (shape, values) = outputs[OUTPUT_NAME].try_extract_tensor::<f32>().map_err(|e| run(e.to_string()))?;
        let expected = [batch as i64, self.shape.horizon as i64, QUANTILES.len() as i64];
        if **shape != expected {
            return Err(run(format!("output '{OUTPUT_NAME}' has shape {shape:?}, expected {expected:?}")));
        }
        out.clear();
        out.extend_from_slice(values);
        Ok(())
    }

    fn refresh(&mut self) -> Option<Result<String, ModelError>> {
        if self.last_check.elapsed() < RELOAD_CHECK_INTERVAL {
            return None;
        }
        self.last_check = Instant::now();
        let stamp = file_stamp(&self.path);
        if stamp == self.stamp {
            return None;
        }
        // Whatever the outcome, this version of the file has been seen: a bad
        // file is reported once, and retried when it changes again.
        self.stamp = stamp;
        let outcome = open(&self.path).and_then(|(session, shape)| {
            if shape != self.shape {
                return Err(ModelError::Shape {
                    path: self.path.display().to_string(),
                    message: format!("the changed file has {shape}; the query was checked against {}", self.shape),
                });
            }
            self.session = session;
            Ok(format!("reloaded model {} ({shape})", self.path.display()))
        });
        Some(outcome)
    }
}
