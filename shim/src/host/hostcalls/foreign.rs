//! Foreign functions: `proxy_call_foreign_function`.
//!
//! The shim offers none: every name (including Envoy's `clear_route_cache`) answers NotFound,
//! which the SDK turns into `Err` and the kproxy filter ignores.

use wasmtime::Caller;

use super::{Hc, allowed, mem, ok, u};
use crate::host::memory;
use crate::host::state::{HostState, Status};

/// `proxy_call_foreign_function(name, args, ret_ptr_ptr, ret_size_ptr)`: unknown ⇒ NotFound.
pub(crate) fn proxy_call_foreign_function(
    mut caller: Caller<'_, HostState>,
    name_ptr: i32,
    name_size: i32,
    args_ptr: i32,
    args_size: i32,
    _ret_ptr: i32,
    _ret_size: i32,
) -> Hc {
    allowed(&caller, "proxy_call_foreign_function")?;
    let _name = mem!(memory::read(&mut caller, u(name_ptr), u(name_size)));
    let _args = mem!(memory::read(&mut caller, u(args_ptr), u(args_size)));
    ok(Status::NotFound)
}
