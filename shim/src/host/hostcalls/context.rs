//! Context, logging and time: `proxy_log`, `proxy_get_log_level`, `proxy_set_effective_context`,
//! `proxy_done`, `proxy_get_current_time_nanoseconds`, `proxy_set_tick_period_milliseconds`.
//!
//! Guest logs go to `tracing` with target `wasm` and the plugin name; nothing here does I/O
//! beyond that, and timers are only recorded (armed after the VM call).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::level_filters::LevelFilter;
use wasmtime::Caller;

use super::{Hc, allowed, mem, ok, u};
use crate::host::LogLevel;
use crate::host::memory;
use crate::host::state::{HostState, Status};

/// Sends one guest log line to `tracing` (and to the harness's capture).
pub(crate) fn emit(state: &mut HostState, level: LogLevel, message: &[u8]) {
    let msg = String::from_utf8_lossy(message);
    let plugin = state.options().name.as_str();
    match level {
        LogLevel::Trace => tracing::trace!(target: "wasm", plugin, "{msg}"),
        LogLevel::Debug => tracing::debug!(target: "wasm", plugin, "{msg}"),
        LogLevel::Info => tracing::info!(target: "wasm", plugin, "{msg}"),
        LogLevel::Warn => tracing::warn!(target: "wasm", plugin, "{msg}"),
        LogLevel::Error | LogLevel::Critical => tracing::error!(target: "wasm", plugin, "{msg}"),
    }
    if level >= LogLevel::Error {
        state.last_error_log = Some(msg.clone().into_owned());
    }
    if let Some(logs) = state.captured_logs.as_mut() {
        logs.push((level, msg.into_owned()));
    }
}

/// `proxy_log(level, msg_ptr, msg_size)`: level > 5 ⇒ BadArgument.
pub(crate) fn proxy_log(mut caller: Caller<'_, HostState>, level: i32, ptr: i32, size: i32) -> Hc {
    let Some(level) = LogLevel::from_abi(level) else {
        return ok(Status::BadArgument);
    };
    let msg = mem!(memory::read(&mut caller, u(ptr), u(size)));
    emit(caller.data_mut(), level, &msg);
    ok(Status::Ok)
}

/// The ABI level for the host's current `tracing` max level (5 = critical when logging is off).
pub(crate) fn host_log_level(state: &HostState) -> LogLevel {
    if let Some(level) = state.log_level_override {
        return level;
    }
    match LevelFilter::current() {
        LevelFilter::TRACE => LogLevel::Trace,
        LevelFilter::DEBUG => LogLevel::Debug,
        LevelFilter::INFO => LogLevel::Info,
        LevelFilter::WARN => LogLevel::Warn,
        LevelFilter::ERROR => LogLevel::Error,
        _ => LogLevel::Critical,
    }
}

/// `proxy_get_log_level(ret_level_ptr)`: the host's level, always Ok.
pub(crate) fn proxy_get_log_level(mut caller: Caller<'_, HostState>, ret: i32) -> Hc {
    allowed(&caller, "proxy_get_log_level")?;
    let level = host_log_level(caller.data()) as u32;
    mem!(memory::write_u32(&mut caller, u(ret), level));
    ok(Status::Ok)
}

/// `proxy_set_effective_context(ctx)`: later hostcalls act on `ctx`; unknown ⇒ BadArgument.
pub(crate) fn proxy_set_effective_context(mut caller: Caller<'_, HostState>, ctx: i32) -> Hc {
    allowed(&caller, "proxy_set_effective_context")?;
    let ctx = u(ctx);
    let state = caller.data_mut();
    if ctx != state.root_id && !state.streams.contains_key(&ctx) {
        return ok(Status::BadArgument);
    }
    state.effective_context = ctx;
    ok(Status::Ok)
}

/// `proxy_done()`: finishes a root whose `on_done` returned false; none pending ⇒ NotFound.
pub(crate) fn proxy_done(mut caller: Caller<'_, HostState>) -> Hc {
    allowed(&caller, "proxy_done")?;
    let state = caller.data_mut();
    if !state.done_pending {
        return ok(Status::NotFound);
    }
    state.done_called = true;
    ok(Status::Ok)
}

/// `proxy_get_current_time_nanoseconds(ret_u64_ptr)`: wall clock.
pub(crate) fn proxy_get_current_time_nanoseconds(
    mut caller: Caller<'_, HostState>,
    ret: i32,
) -> Hc {
    allowed(&caller, "proxy_get_current_time_nanoseconds")?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    mem!(memory::write_u64(&mut caller, u(ret), nanos));
    ok(Status::Ok)
}

/// `proxy_set_tick_period_milliseconds(period)`: the root context's timer, 0 disables.
pub(crate) fn proxy_set_tick_period_milliseconds(
    mut caller: Caller<'_, HostState>,
    period: i32,
) -> Hc {
    allowed(&caller, "proxy_set_tick_period_milliseconds")?;
    caller.data_mut().tick_change = Some(Duration::from_millis(u64::from(u(period))));
    ok(Status::Ok)
}
