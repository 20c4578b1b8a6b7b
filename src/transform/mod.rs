//! Endpoints' transformations: a JavaScript function `handler(webhook)` an endpoint's
//! owner writes, run on each attempt just before it is signed and sent, that may change
//! the request's method, URL, headers and payload, or cancel it.
//!
//! The code runs in QuickJS (through `rquickjs`) on threads of its own, never on the
//! delivery runtime, so a slow handler holds up only the transformations queued behind
//! it. Each compiled program has a runtime of its own: its memory limit is its own, its
//! globals are its own (no application sees another's state), and one that ran out of
//! time or memory is thrown away and compiled again. The context has no clock (no `Date`,
//! no `performance`), no I/O, no modules and no timers: what a handler sees is what it is
//! given.
//!
//! A program is compiled once and kept under its endpoint (a new version replaces it) on
//! the thread the endpoint's id picks; checks and tries run on a thread of their own.

mod sandbox;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;

/// The longest a transformation's code may be, in bytes.
pub const MAX_CODE_BYTES: usize = 16 * 1024;

/// The largest body a transformation may make, in bytes (an event's is at most 256 KiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long past its time limit a run's answer is awaited before the caller gives up: a
/// run is stopped at its limit, so this is reached only if a thread is stuck in native
/// code the deadline cannot stop (see `sandbox::GUARDS`); the attempt then fails instead of
/// waiting for ever.
const STUCK_AFTER: Duration = Duration::from_secs(2);

/// How a transformation runs: its limits, and how many threads run them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The longest one run of a handler (or of the code's top level when it is compiled)
    /// may take before it is stopped.
    pub time: Duration,
    /// The most memory one program's runtime may hold, in bytes.
    pub memory: usize,
    /// The threads that run transformations (each keeps its own compiled programs).
    pub threads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { time: Duration::from_millis(50), memory: 32 * 1024 * 1024, threads: 1 }
    }
}

/// A transformation's code as the engine runs it: the code, and the key its compiled
/// form is kept under (its endpoint and the hash of the code).
#[derive(Debug, Clone)]
pub struct Program {
    /// Whose it is, and which code: programs of two endpoints never share a runtime.
    key: (u128, [u8; 32]),
    /// The JavaScript source, which declares `handler`.
    code: Arc<str>,
}

impl Program {
    /// The program `code` of endpoint `owner` (an endpoint id).
    pub fn new(owner: u128, code: &str) -> Self {
        Program { key: (owner, sha2::Sha256::digest(code.as_bytes()).into()), code: code.into() }
    }
}

/// The HTTP method a transformed request goes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `POST`, every delivery's method unless a transformation changes it.
    Post,
    /// `PUT`.
    Put,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// A request as a handler receives it and returns it (`webhook` in the handler).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `POST` or `PUT`.
    pub method: Method,
    /// Where it goes.
    pub url: String,
    /// The endpoint's own headers (stile's, such as the signatures, are added after and
    /// cannot be set).
    pub headers: BTreeMap<String, String>,
    /// The body: the event object as delivered, JSON.
    pub payload: bytes::Bytes,
    /// The event's type (read-only: a change is ignored).
    pub event_type: String,
}

/// What a handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transformed {
    /// Send this request.
    Send(Webhook),
    /// Send nothing (`cancel: true`).
    Cancel,
}

/// Why a transformation did not give a request to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The code does not compile, or its top level threw.
    #[error("the code does not compile: {0}")]
    Compile(String),
    /// The code declares no function `handler`.
    #[error("the code declares no function `handler(webhook)`")]
    NoHandler,
    /// The handler threw.
    #[error("the handler threw: {0}")]
    Threw(String),
    /// The handler (or the code's top level) ran past the time limit and was stopped.
    #[error("stopped after {} ms: the time limit of a transformation", .0.as_millis())]
    TimedOut(Duration),
    /// The program ran out of the memory it may use and was stopped.
    #[error("stopped: it used more than the {} MiB a transformation may use", .0 / (1024 * 1024))]
    OutOfMemory(usize),
    /// The handler returned something that is not a request to send.
    #[error("the handler returned {0}")]
    BadResult(String),
    /// The code is longer than [`MAX_CODE_BYTES`].
    #[error("the code is {0} bytes; a transformation may have at most {MAX_CODE_BYTES}")]
    TooLong(usize),
    /// No thread runs transformations (the server is stopping, or the thread is gone).
    #[error("no transformation thread answered")]
    Unavailable,
}

/// A request to one of the threads.
enum Job {
    /// Run `program` (compiled once, then kept) on a request.
    Run(Program, Webhook, Reply<Result<Transformed, TransformError>>),
    /// Compile `code` in a fresh runtime and run it on a request, keeping nothing: a try
    /// before the code is saved (`None`: only compile it).
    Try(Arc<str>, Option<Webhook>, Reply<Result<Option<Transformed>, TransformError>>),
}

/// Where a thread's answer goes.
type Reply<T> = tokio::sync::oneshot::Sender<T>;

/// The transformation threads, and the way to them. Dropping it stops them once their
/// queued work is done.
pub struct Transformer {
    /// One queue per delivery thread; an endpoint's programs go to the thread its id
    /// picks, which keeps the one in force compiled.
    queues: Vec<tokio::sync::mpsc::UnboundedSender<Job>>,
    /// The queue of the thread of its own that checks and tries code for the API, so a
    /// flood of tries never delays a delivery.
    tries: tokio::sync::mpsc::UnboundedSender<Job>,
    /// How long an answer is awaited at most.
    wait: Duration,
}

impl std::fmt::Debug for Transformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transformer").field("threads", &self.queues.len()).finish()
    }
}

impl Transformer {
    /// Starts `limits.threads` threads (at least one) that run transformations within
    /// `limits`.
    pub fn start(limits: Limits) -> Arc<Self> {
        let thread = |name: String| {
            let (queue, jobs) = tokio::sync::mpsc::unbounded_channel();
            std::thread::Builder::new()
                .name(name)
                // QuickJS's stack limit (`sandbox::STACK_BYTES`) with room to spare.
                .stack_size(4 * 1024 * 1024)
                .spawn(move || sandbox::serve(jobs, limits))
                .expect("the OS starts a thread");
            queue
        };
        let queues = (0..limits.threads.max(1)).map(|n| thread(format!("stile-transform-{n}"))).collect();
        let tries = thread("stile-transform-try".into());
        // A try compiles and runs: two time limits.
        Arc::new(Transformer { queues, tries, wait: limits.time * 2 + STUCK_AFTER })
    }

    /// The answer to a job, or `TimedOut` if none came in time (see [`STUCK_AFTER`]).
    async fn answer<T>(
        &self,
        answer: tokio::sync::oneshot::Receiver<Result<T, TransformError>>,
    ) -> Result<T, TransformError> {
        match tokio::time::timeout(self.wait, answer).await {
            Ok(answered) => answered.map_err(|_| TransformError::Unavailable)?,
            Err(_) => {
                tracing::error!("a transformation thread did not answer in time: a run is stuck in native code");
                Err(TransformError::TimedOut(self.wait))
            }
        }
    }

    /// Runs `program`'s handler on `webhook`.
    pub async fn run(&self, program: Program, webhook: Webhook) -> Result<Transformed, TransformError> {
        let thread = (program.key.0 % self.queues.len() as u128) as usize;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queues[thread].send(Job::Run(program, webhook, reply)).map_err(|_| TransformError::Unavailable)?;
        self.answer(answer).await
    }

    /// Checks that `code` compiles and declares `handler` (in a fresh runtime, within the
    /// limits), keeping nothing: what a write checks before it saves.
    pub async fn check(&self, code: &str) -> Result<(), TransformError> {
        self.try_code(code, None).await.map(drop)
    }

    /// Runs `code` on `webhook` in a fresh runtime, keeping nothing: a try before saving.
    pub async fn try_run(&self, code: &str, webhook: Webhook) -> Result<Transformed, TransformError> {
        let ran = self.try_code(code, Some(webhook)).await?;
        ran.ok_or_else(|| TransformError::BadResult("nothing".into()))
    }

    /// Compiles `code` and runs it on `webhook` if given, on the thread for tries.
    async fn try_code(&self, code: &str, webhook: Option<Webhook>) -> Result<Option<Transformed>, TransformError> {
        if code.len() > MAX_CODE_BYTES {
            return Err(TransformError::TooLong(code.len()));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tries.send(Job::Try(code.into(), webhook, reply)).map_err(|_| TransformError::Unavailable)?;
        self.answer(answer).await
    }
}
