//! Hostcalls, one file per spec area; each function carries its ABI name.
//!
//! Every hostcall has the same shape: decode guest arguments through `memory`, act on
//! `HostState`, encode the result, return a status the SDK accepts for that call. A bad guest
//! pointer answers `InvalidMemoryAccess` (as cpp-host); only the guest allocator's own trap and the
//! restricted start-up phase trap. No hostcall calls back into the guest except the allocator, and
//! none does I/O (http calls and timers are queued and run after the VM call).

#![allow(
    clippy::needless_pass_by_value,
    reason = "wasmtime hands every host function its `Caller` by value"
)]

pub(crate) mod buffers;
pub(crate) mod callouts;
pub(crate) mod context;
pub(crate) mod foreign;
pub(crate) mod headers;
pub(crate) mod metrics;
pub(crate) mod properties;
pub(crate) mod shared;
pub(crate) mod stream;
pub(crate) mod wasi;

use wasmtime::Caller;

use super::memory::MemError;
use super::state::{Callback, HostState, Status};

/// What every hostcall returns: `Ok(status)`, or `Err` to trap.
pub(crate) type Hc = wasmtime::Result<i32>;

/// The status for a failed memory access; an allocator trap stays a trap.
pub(crate) fn mem_status(e: MemError) -> Hc {
    match e {
        MemError::Trap(t) => Err(t),
        _ => Ok(Status::InvalidMemoryAccess.code()),
    }
}

/// Unwraps a memory result or returns its status from the hostcall.
macro_rules! mem {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $crate::host::hostcalls::mem_status(e),
        }
    };
}
pub(crate) use mem;

/// Traps a `proxy_*` call made in the restricted start-up phase or from inside the allocator
/// (V8's `restricted_callback`), so a filter that does work in `main!` fails here as in Envoy.
pub(crate) fn allowed(caller: &Caller<'_, HostState>, name: &str) -> wasmtime::Result<()> {
    let state = caller.data();
    if state.callback == Callback::Initialize || state.allocating {
        return Err(wasmtime::Error::msg(format!(
            "restricted_callback: {name} is not allowed during module start-up"
        )));
    }
    Ok(())
}

/// A status as the wasm return value.
pub(crate) fn ok(status: Status) -> Hc {
    Ok(status.code())
}

/// Converts a guest `u32` passed as `i32`.
pub(crate) fn u(v: i32) -> u32 {
    v.cast_unsigned()
}
