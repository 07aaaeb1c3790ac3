//! OCI hooks that run in the runtime's namespaces: `createRuntime` and
//! `prestart` (after the container's namespaces exist, before its process
//! runs), `poststart` and `poststop`. Each gets the container's state JSON
//! on stdin, its own argv and env, and an optional timeout.
//! `createContainer` and `startContainer` (which run inside the container)
//! are refused at `create` with a clear error.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};

use crate::error::RuntimeError;
use crate::state::State;

/// The hook phases the runtime runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    CreateRuntime,
    Prestart,
    Poststart,
    Poststop,
}

/// Refuses hooks this runtime cannot run.
pub(crate) fn check(spec: &Spec) -> Result<(), RuntimeError> {
    let Some(h) = spec.hooks() else { return Ok(()) };
    if h.create_container().as_ref().is_some_and(|v| !v.is_empty())
        || h.start_container().as_ref().is_some_and(|v| !v.is_empty())
    {
        return Err(RuntimeError::Unsupported(
            "hooks.createContainer and hooks.startContainer (hooks run inside the container) are not supported yet".into(),
        ));
    }
    Ok(())
}

/// Whether the spec has any hook to run before the process starts.
pub(crate) fn has_pre_start(spec: &Spec) -> bool {
    spec.hooks().as_ref().is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    })
}

fn list(spec: &Spec, phase: Phase) -> Vec<Hook> {
    let Some(h) = spec.hooks() else {
        return Vec::new();
    };
    let v = match phase {
        Phase::CreateRuntime => h.create_runtime(),
        Phase::Prestart => h.prestart(),
        Phase::Poststart => h.poststart(),
        Phase::Poststop => h.poststop(),
    };
    v.clone().unwrap_or_default()
}

/// Runs the hooks of `phase` in order; the first failure stops them.
pub(crate) fn run(spec: &Spec, phase: Phase, state: &State) -> Result<(), RuntimeError> {
    let input = serde_json::to_vec(state).expect("state serializes");
    for hook in list(spec, phase) {
        run_one(&hook, &input).map_err(|message| {
            RuntimeError::Unsupported(format!(
                "{phase:?} hook {}: {message}",
                hook.path().display()
            ))
        })?;
    }
    Ok(())
}

fn run_one(hook: &Hook, input: &[u8]) -> Result<(), String> {
    let args = hook.args().clone().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(input);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return if status.success() {
                Ok(())
            } else {
                Err(format!("exited with {status}"))
            };
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", hook.timeout().unwrap_or(0)));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
