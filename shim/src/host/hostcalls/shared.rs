//! Shared data and queues: `proxy_{get,set}_shared_data`,
//! `proxy_{register,resolve,enqueue,dequeue}_shared_queue`.
//!
//! Shared data is process-global per `vm_id` with a global CAS counter (`state::SharedData`).
//! Queues are process-global; `proxy_on_queue_ready` is not delivered (the host has no queue
//! consumers), a guest polls with dequeue. No I/O here.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use wasmtime::Caller;

use super::{Hc, allowed, mem, ok, u};
use crate::host::memory;
use crate::host::state::{HostState, Status};

/// `proxy_get_shared_data(key, ret_val_ptr_ptr, ret_val_size_ptr, ret_cas_ptr)`: absent ⇒ NotFound.
pub(crate) fn proxy_get_shared_data(
    mut caller: Caller<'_, HostState>,
    key_ptr: i32,
    key_size: i32,
    ret_ptr: i32,
    ret_size: i32,
    ret_cas: i32,
) -> Hc {
    allowed(&caller, "proxy_get_shared_data")?;
    let key = mem!(memory::read(&mut caller, u(key_ptr), u(key_size)));
    let Some((value, cas)) = caller.data().shared.data.get(&key) else {
        return ok(Status::NotFound);
    };
    mem!(memory::return_bytes(
        &mut caller,
        &value,
        u(ret_ptr),
        u(ret_size)
    ));
    mem!(memory::write_u32(&mut caller, u(ret_cas), cas));
    ok(Status::Ok)
}

/// `proxy_set_shared_data(key, value, cas)`: `cas != 0` and different ⇒ CasMismatch.
pub(crate) fn proxy_set_shared_data(
    mut caller: Caller<'_, HostState>,
    key_ptr: i32,
    key_size: i32,
    val_ptr: i32,
    val_size: i32,
    cas: i32,
) -> Hc {
    allowed(&caller, "proxy_set_shared_data")?;
    let key = mem!(memory::read(&mut caller, u(key_ptr), u(key_size)));
    let value = mem!(memory::read(&mut caller, u(val_ptr), u(val_size)));
    match caller.data().shared.data.set(&key, &value, u(cas)) {
        Ok(()) => ok(Status::Ok),
        Err(()) => ok(Status::CasMismatch),
    }
}

struct Queue {
    vm_id: String,
    name: Vec<u8>,
    items: VecDeque<Vec<u8>>,
}

/// All queues of the process; the id is the index + 1.
static QUEUES: Mutex<Vec<Queue>> = Mutex::new(Vec::new());

fn find(queues: &[Queue], vm_id: &str, name: &[u8]) -> Option<u32> {
    queues
        .iter()
        .position(|q| q.vm_id == vm_id && q.name == name)
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// `proxy_register_shared_queue(name, ret_id_ptr)`: returns the (possibly existing) queue id.
pub(crate) fn proxy_register_shared_queue(
    mut caller: Caller<'_, HostState>,
    name_ptr: i32,
    name_size: i32,
    ret_id: i32,
) -> Hc {
    allowed(&caller, "proxy_register_shared_queue")?;
    let name = mem!(memory::read(&mut caller, u(name_ptr), u(name_size)));
    let vm_id = caller.data().options().vm_id.clone();
    let id = {
        let mut queues = QUEUES.lock().unwrap_or_else(PoisonError::into_inner);
        match find(&queues, &vm_id, &name) {
            Some(id) => id,
            None => {
                queues.push(Queue {
                    vm_id,
                    name,
                    items: VecDeque::new(),
                });
                u32::try_from(queues.len()).unwrap_or(u32::MAX)
            }
        }
    };
    mem!(memory::write_u32(&mut caller, u(ret_id), id));
    ok(Status::Ok)
}

/// `proxy_resolve_shared_queue(vm_id, name, ret_id_ptr)`: unknown ⇒ NotFound.
pub(crate) fn proxy_resolve_shared_queue(
    mut caller: Caller<'_, HostState>,
    vm_ptr: i32,
    vm_size: i32,
    name_ptr: i32,
    name_size: i32,
    ret_id: i32,
) -> Hc {
    allowed(&caller, "proxy_resolve_shared_queue")?;
    let vm_id = mem!(memory::read(&mut caller, u(vm_ptr), u(vm_size)));
    let name = mem!(memory::read(&mut caller, u(name_ptr), u(name_size)));
    let vm_id = String::from_utf8_lossy(&vm_id).into_owned();
    let found = find(
        &QUEUES.lock().unwrap_or_else(PoisonError::into_inner),
        &vm_id,
        &name,
    );
    let Some(id) = found else {
        return ok(Status::NotFound);
    };
    mem!(memory::write_u32(&mut caller, u(ret_id), id));
    ok(Status::Ok)
}

/// `proxy_enqueue_shared_queue(id, value)`: unknown ⇒ NotFound.
pub(crate) fn proxy_enqueue_shared_queue(
    mut caller: Caller<'_, HostState>,
    id: i32,
    val_ptr: i32,
    val_size: i32,
) -> Hc {
    allowed(&caller, "proxy_enqueue_shared_queue")?;
    let value = mem!(memory::read(&mut caller, u(val_ptr), u(val_size)));
    let mut queues = QUEUES.lock().unwrap_or_else(PoisonError::into_inner);
    let index = usize::try_from(u(id)).unwrap_or(0).wrapping_sub(1);
    match queues.get_mut(index) {
        Some(q) => {
            q.items.push_back(value);
            ok(Status::Ok)
        }
        None => ok(Status::NotFound),
    }
}

/// `proxy_dequeue_shared_queue(id, ret_ptr_ptr, ret_size_ptr)`: empty ⇒ Empty, unknown ⇒ NotFound.
pub(crate) fn proxy_dequeue_shared_queue(
    mut caller: Caller<'_, HostState>,
    id: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Hc {
    allowed(&caller, "proxy_dequeue_shared_queue")?;
    let item = {
        let mut queues = QUEUES.lock().unwrap_or_else(PoisonError::into_inner);
        let index = usize::try_from(u(id)).unwrap_or(0).wrapping_sub(1);
        match queues.get_mut(index) {
            Some(q) => q.items.pop_front(),
            None => return ok(Status::NotFound),
        }
    };
    let Some(item) = item else {
        return ok(Status::Empty);
    };
    mem!(memory::return_bytes(
        &mut caller,
        &item,
        u(ret_ptr),
        u(ret_size)
    ));
    ok(Status::Ok)
}
