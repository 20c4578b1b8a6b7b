//! One transformation thread: QuickJS runtimes, one per compiled program, each with its
//! memory limit and an interrupt handler that stops it at its deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rquickjs::context::intrinsic;
use rquickjs::{Context, Ctx, Function, Object, Persistent, Runtime, Value};

use super::{Job, Limits, Method, TransformError, Transformed, Webhook};

/// The most native stack a handler's JavaScript may use (deep recursion is a thrown
/// `RangeError`, not a crash); the thread has four times as much.
pub(super) const STACK_BYTES: usize = 1024 * 1024;

/// The most compiled programs a thread keeps; the least recently used goes first.
const KEPT: usize = 64;

/// The most headers read from a handler's answer (an endpoint may have 20).
const MAX_HEADERS_READ: usize = 64;

/// How many times one program's memory limit the programs a thread keeps may hold
/// together; past it the least recently used go first.
const KEPT_MEMORY_FACTOR: usize = 4;

/// The most a string search may compare in one call (its string's length times the
/// pattern's). QuickJS's native search is O(n·m) and never checks the deadline: a larger
/// one could run for minutes in one call. This bound keeps a call within milliseconds.
const MAX_SEARCH_WORK: u64 = 50_000_000;

/// Run in each context before the user's code: wraps the string methods whose native
/// search is quadratic (and checks no deadline) in JavaScript that refuses a search larger
/// than `MAX_SEARCH_WORK`, so every long-running loop is one the deadline stops. The
/// originals stay reachable only through these closures.
const GUARDS: &str = r#"(function (limit) {
  const P = String.prototype;
  const guard = (name) => {
    const native = P[name];
    Object.defineProperty(P, name, { writable: true, configurable: true, value: function (...args) {
      const pattern = args[0];
      if (typeof pattern === 'string' || pattern instanceof String) {
        const work = String(this).length * Math.max(1, String(pattern).length);
        if (work > limit) throw new RangeError(`String.prototype.${name}: a search this large (${work} steps) is refused in a transformation`);
      }
      return native.apply(this, args);
    } });
  };
  ['indexOf', 'lastIndexOf', 'includes', 'split', 'replace', 'replaceAll'].forEach(guard);
})"#;

/// What a handler's context has beyond the base objects (`Object`, `Array`, `String`,
/// `Math`, ...): `eval` (which running a script needs), regular expressions, `JSON`,
/// `Map` and `Set`. Not `Date` or `performance` (no clock), nor promises (nothing runs
/// after the handler returns).
type Intrinsics = (intrinsic::Eval, intrinsic::RegExpCompiler, intrinsic::RegExp, intrinsic::Json, intrinsic::MapSet);

/// A compiled program: its runtime, its context and its `handler`. Fields drop in
/// order: the handler before the context, the context before the runtime.
struct Compiled {
    /// The code's `handler`, kept alive across runs.
    handler: Persistent<Function<'static>>,
    /// Where the code's globals live.
    context: Context,
    /// Its own, for its own memory limit and interrupt handler.
    runtime: Runtime,
    /// When the current run must stop.
    clock: Deadline,
    /// When it was last used (the thread's count of runs), for eviction.
    used: u64,
    /// The bytes its runtime held after its last run, for eviction.
    bytes: usize,
}

/// The deadline the interrupt handler checks: nanoseconds after `epoch`, 0 when none.
#[derive(Clone)]
struct Deadline {
    /// When the runtime was made.
    epoch: Instant,
    /// The deadline, or 0.
    at: Arc<AtomicU64>,
}

impl Deadline {
    /// Sets the deadline `limits.time` from now.
    fn arm(&self, limits: &Limits) {
        let at = self.epoch.elapsed() + limits.time;
        self.at.store((at.as_nanos() as u64).max(1), Ordering::Relaxed);
    }

    /// Clears the deadline.
    fn disarm(&self) {
        self.at.store(0, Ordering::Relaxed);
    }

    /// Whether a deadline is set and has passed.
    fn passed(&self) -> bool {
        let at = self.at.load(Ordering::Relaxed);
        at != 0 && self.epoch.elapsed().as_nanos() as u64 >= at
    }
}

/// Runs the jobs that come to this thread until the queue closes.
pub(super) fn serve(mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>, limits: Limits) {
    let mut kept = Kept::default();
    while let Some(job) = jobs.blocking_recv() {
        match job {
            Job::Run(program, webhook, reply) => {
                // The attempt gave up waiting (the engine is stopping): nothing to do.
                if reply.is_closed() {
                    continue;
                }
                let _ = reply.send(kept.run(program, &webhook, &limits));
            }
            Job::Try(code, webhook, reply) => {
                // The request that asked is gone.
                if reply.is_closed() {
                    continue;
                }
                let result = compile(&code, &limits)
                    .and_then(|compiled| webhook.map(|webhook| run(&compiled, &webhook, &limits)).transpose());
                let _ = reply.send(result);
            }
        }
    }
}

/// The compiled programs a thread keeps: one per endpoint (a new version replaces the
/// one before), at most [`KEPT`], holding at most [`KEPT_MEMORY_FACTOR`] times one
/// program's memory limit together.
#[derive(Default)]
struct Kept {
    /// By endpoint: the hash of its code, and the program.
    programs: HashMap<u128, ([u8; 32], Compiled)>,
    /// The runs made, as a clock for eviction.
    runs: u64,
}

impl Kept {
    /// Runs `program` on `webhook`, compiling it first unless it is kept.
    fn run(
        &mut self,
        program: super::Program,
        webhook: &Webhook,
        limits: &Limits,
    ) -> Result<Transformed, TransformError> {
        self.runs += 1;
        let (owner, hash) = program.key;
        if self.programs.get(&owner).is_none_or(|(kept, _)| *kept != hash) {
            // A new version replaces the one before.
            self.programs.remove(&owner);
            let compiled = compile(&program.code, limits)?;
            self.programs.insert(owner, (hash, compiled));
        }
        let Some((_, compiled)) = self.programs.get_mut(&owner) else { unreachable!("inserted above") };
        compiled.used = self.runs;
        let result = run(compiled, webhook, limits);
        compiled.bytes = compiled.runtime.memory_usage().malloc_size.max(0) as usize;
        // Stopped midway, its state may be anything: the next run starts afresh.
        if matches!(result, Err(TransformError::TimedOut(_) | TransformError::OutOfMemory(_))) {
            self.programs.remove(&owner);
        }
        self.evict(limits);
        result
    }

    /// Drops the least recently used programs past the count and the memory they may keep.
    fn evict(&mut self, limits: &Limits) {
        let budget = limits.memory.saturating_mul(KEPT_MEMORY_FACTOR);
        loop {
            let held: usize = self.programs.values().map(|(_, c)| c.bytes).sum();
            if self.programs.len() <= KEPT && held <= budget {
                return;
            }
            let Some(oldest) = self.programs.iter().min_by_key(|(_, (_, c))| c.used).map(|(key, _)| *key) else {
                return;
            };
            self.programs.remove(&oldest);
        }
    }
}

/// Compiles `code` in a runtime of its own and finds its `handler`.
fn compile(code: &str, limits: &Limits) -> Result<Compiled, TransformError> {
    let runtime = Runtime::new().map_err(|_| TransformError::OutOfMemory(limits.memory))?;
    runtime.set_memory_limit(limits.memory);
    runtime.set_max_stack_size(STACK_BYTES);
    let clock = Deadline { epoch: Instant::now(), at: Arc::new(AtomicU64::new(0)) };
    let interrupt = clock.clone();
    runtime.set_interrupt_handler(Some(Box::new(move || interrupt.passed())));
    let context = Context::custom::<Intrinsics>(&runtime).map_err(|_| TransformError::OutOfMemory(limits.memory))?;
    clock.arm(limits);
    let handler = context.with(|ctx| {
        let compile_failure = |e| failure(&ctx, e, &clock, limits, TransformError::Compile);
        let guards: Function = ctx.eval(GUARDS).map_err(compile_failure)?;
        guards.call::<_, ()>((MAX_SEARCH_WORK as f64,)).map_err(compile_failure)?;
        if let Err(err) = ctx.eval::<(), _>(code) {
            return Err(failure(&ctx, err, &clock, limits, TransformError::Compile));
        }
        let handler: Value =
            ctx.globals().get("handler").map_err(|e| failure(&ctx, e, &clock, limits, TransformError::Compile))?;
        let handler = handler.into_function().ok_or(TransformError::NoHandler)?;
        Ok(Persistent::save(&ctx, handler))
    });
    clock.disarm();
    Ok(Compiled { handler: handler?, context, runtime, clock, used: 0, bytes: 0 })
}

/// Runs a compiled handler on `webhook`, within the time limit.
fn run(compiled: &Compiled, webhook: &Webhook, limits: &Limits) -> Result<Transformed, TransformError> {
    compiled.clock.arm(limits);
    let result = compiled.context.with(|ctx| {
        let thrown = |err| failure(&ctx, err, &compiled.clock, limits, TransformError::Threw);
        let handler = compiled.handler.clone().restore(&ctx).map_err(thrown)?;
        let argument = to_js(&ctx, webhook).map_err(thrown)?;
        let answer: Value = handler.call((argument,)).map_err(thrown)?;
        from_js(&ctx, answer, webhook).map_err(|err| match err {
            Read::Js(err) => thrown(err),
            Read::Bad(what) => TransformError::BadResult(what),
        })
    });
    compiled.clock.disarm();
    result
}

/// The `webhook` argument a handler receives.
fn to_js<'js>(ctx: &Ctx<'js>, webhook: &Webhook) -> rquickjs::Result<Object<'js>> {
    let argument = Object::new(ctx.clone())?;
    argument.set("method", webhook.method.as_str())?;
    argument.set("url", webhook.url.as_str())?;
    let headers = Object::new(ctx.clone())?;
    for (name, value) in &webhook.headers {
        headers.set(name.as_str(), value.as_str())?;
    }
    argument.set("headers", headers)?;
    argument.set("payload", ctx.json_parse(webhook.payload.to_vec())?)?;
    argument.set("eventType", webhook.event_type.as_str())?;
    Ok(argument)
}

/// Why a handler's answer could not be read.
enum Read {
    /// Reading it ran JavaScript (a getter) that threw or was stopped.
    Js(rquickjs::Error),
    /// It is not a request: what is wrong with it.
    Bad(String),
}

impl From<rquickjs::Error> for Read {
    fn from(err: rquickjs::Error) -> Self {
        Read::Js(err)
    }
}

/// The request a handler's `answer` describes (its event type is `webhook`'s, whatever
/// the handler did to it).
fn from_js<'js>(ctx: &Ctx<'js>, answer: Value<'js>, webhook: &Webhook) -> Result<Transformed, Read> {
    let Some(answer) = answer.as_object() else {
        return Err(Read::Bad(format!("{} instead of the webhook object", type_name(&answer))));
    };
    let cancel: Value = answer.get("cancel")?;
    if cancel.as_bool() == Some(true) {
        return Ok(Transformed::Cancel);
    }
    if !(cancel.is_undefined() || cancel.is_null() || cancel.is_bool()) {
        return Err(Read::Bad(format!("`cancel` as {}; it must be true or false", type_name(&cancel))));
    }
    let method: Value = answer.get("method")?;
    let method = match method.as_string().map(|s| s.to_string()).transpose()?.as_deref() {
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        _ => return Err(Read::Bad("a `method` other than \"POST\" or \"PUT\"".into())),
    };
    let url: Value = answer.get("url")?;
    let Some(url) = url.as_string().map(|s| s.to_string()).transpose()? else {
        return Err(Read::Bad(format!("`url` as {}; it must be a string", type_name(&url))));
    };
    let headers: Value = answer.get("headers")?;
    let headers = match headers.as_object() {
        None if headers.is_undefined() || headers.is_null() => BTreeMap::new(),
        None => return Err(Read::Bad(format!("`headers` as {}; it must be an object", type_name(&headers)))),
        Some(headers) => {
            let mut read = BTreeMap::new();
            for entry in headers.props::<String, Value>() {
                // Read no further than any request may carry (the exact rule is the sender's).
                if read.len() == MAX_HEADERS_READ {
                    return Err(Read::Bad(format!("more than {MAX_HEADERS_READ} headers")));
                }
                let (name, value) = entry?;
                let Some(value) = value.as_string().map(|s| s.to_string()).transpose()? else {
                    return Err(Read::Bad(format!("header `{name}` as {}; it must be a string", type_name(&value))));
                };
                read.insert(name, value);
            }
            read
        }
    };
    let payload: Value = answer.get("payload")?;
    let Some(payload) = ctx.json_stringify(payload)? else {
        return Err(Read::Bad("a `payload` JSON cannot hold (undefined, or a function)".into()));
    };
    let payload = payload.to_string()?;
    if payload.len() > super::MAX_BODY_BYTES {
        return Err(Read::Bad(format!(
            "a `payload` of {} bytes; a request's body may have at most {}",
            payload.len(),
            super::MAX_BODY_BYTES
        )));
    }
    Ok(Transformed::Send(Webhook {
        method,
        url,
        headers,
        payload: payload.into(),
        event_type: webhook.event_type.clone(),
    }))
}

/// What kind of value `value` is, for messages.
fn type_name(value: &Value) -> &'static str {
    if value.is_undefined() {
        "undefined"
    } else if value.is_null() {
        "null"
    } else if value.is_array() {
        "an array"
    } else if value.is_function() {
        "a function"
    } else if value.is_object() {
        "an object"
    } else if value.is_string() {
        "a string"
    } else if value.is_bool() {
        "a boolean"
    } else {
        "a number"
    }
}

/// The error `err` stands for: stopped at the deadline, out of memory, or what the
/// JavaScript threw (wrapped by `threw`).
fn failure(
    ctx: &Ctx,
    err: rquickjs::Error,
    clock: &Deadline,
    limits: &Limits,
    threw: fn(String) -> TransformError,
) -> TransformError {
    if clock.passed() {
        return TransformError::TimedOut(limits.time);
    }
    let message = match err {
        rquickjs::Error::Exception => {
            let thrown = ctx.catch();
            match thrown.as_exception() {
                Some(exception) => {
                    let name: Option<String> = exception.get("name").ok();
                    let message = exception.message().unwrap_or_default();
                    match name {
                        Some(name) if !name.is_empty() => format!("{name}: {message}"),
                        _ => message,
                    }
                }
                None => ctx
                    .json_stringify(thrown)
                    .ok()
                    .flatten()
                    .and_then(|s| s.to_string().ok())
                    .unwrap_or_else(|| "a value".into()),
            }
        }
        rquickjs::Error::Allocation => return TransformError::OutOfMemory(limits.memory),
        other => other.to_string(),
    };
    if message.contains("out of memory") {
        return TransformError::OutOfMemory(limits.memory);
    }
    threw(truncated(message))
}

/// The most of a thrown message kept.
const MAX_MESSAGE_CHARS: usize = 500;

/// `message`, cut to [`MAX_MESSAGE_CHARS`].
fn truncated(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message,
    }
}
