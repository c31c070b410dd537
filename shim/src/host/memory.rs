//! Bounds-checked access to guest linear memory, and buffers handed to the guest.
//!
//! Every guest `(ptr, len)` goes through [`range`] (u64 arithmetic, so `ptr + len` cannot wrap).
//! Buffers returned to the guest are allocated by the guest (`proxy_on_memory_allocate`, or
//! `malloc` first as cpp-host does); empty data is returned as `(0, 0)` without allocating.
//! Memory is re-borrowed after every allocator call (it may grow). This module knows nothing of
//! HTTP or of the ABI's status codes beyond "bad memory".

use std::ops::Range;

use wasmtime::{AsContext, AsContextMut, Caller, Memory};

use super::state::HostState;

/// A guest memory access that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MemError {
    /// `(ptr, len)` lies outside the guest's memory.
    #[error("guest memory access out of bounds")]
    OutOfBounds,
    /// The module has no memory export.
    #[error("the module exports no memory")]
    NoMemory,
    /// The guest allocator returned 0 or a buffer outside memory.
    #[error("the guest allocator failed")]
    AllocFailed,
    /// The guest allocator trapped; the trap is propagated to the caller of the hostcall.
    #[error("the guest allocator trapped")]
    Trap(#[source] wasmtime::Error),
}

/// The byte range `ptr .. ptr + len` if it lies inside a memory of `mem_len` bytes.
pub(crate) fn range(mem_len: usize, ptr: u32, len: u32) -> Option<Range<usize>> {
    let end = u64::from(ptr) + u64::from(len);
    if end > u64::try_from(mem_len).ok()? {
        return None;
    }
    Some(usize::try_from(ptr).ok()?..usize::try_from(end).ok()?)
}

fn memory(caller: &mut Caller<'_, HostState>) -> Result<Memory, MemError> {
    if let Some(mem) = caller.data().memory {
        return Ok(mem);
    }
    caller
        .get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or(MemError::NoMemory)
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    len: u32,
) -> Result<Vec<u8>, MemError> {
    let mem = memory(caller)?;
    let data = mem.data(caller.as_context());
    let r = range(data.len(), ptr, len).ok_or(MemError::OutOfBounds)?;
    data.get(r).map(<[u8]>::to_vec).ok_or(MemError::OutOfBounds)
}

/// Writes `bytes` at `ptr`.
pub(crate) fn write(
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    bytes: &[u8],
) -> Result<(), MemError> {
    let mem = memory(caller)?;
    let data = mem.data_mut(caller.as_context_mut());
    let len = u32::try_from(bytes.len()).map_err(|_| MemError::OutOfBounds)?;
    let r = range(data.len(), ptr, len).ok_or(MemError::OutOfBounds)?;
    data.get_mut(r)
        .ok_or(MemError::OutOfBounds)?
        .copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian u32 at `ptr`.
pub(crate) fn write_u32(
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    value: u32,
) -> Result<(), MemError> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Writes a little-endian u64 at `ptr`.
pub(crate) fn write_u64(
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    value: u64,
) -> Result<(), MemError> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Reads a little-endian u32 at `ptr`.
pub(crate) fn read_u32(caller: &mut Caller<'_, HostState>, ptr: u32) -> Result<u32, MemError> {
    let b = read(caller, ptr, 4)?;
    let arr: [u8; 4] = b.as_slice().try_into().map_err(|_| MemError::OutOfBounds)?;
    Ok(u32::from_le_bytes(arr))
}

/// Allocates `bytes.len()` bytes in the guest and copies `bytes` there; returns the guest pointer.
pub(crate) fn alloc_copy(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
) -> Result<u32, MemError> {
    let size = i32::try_from(bytes.len()).map_err(|_| MemError::AllocFailed)?;
    let alloc = match caller.data().alloc.clone() {
        Some(f) => f,
        None => caller
            .get_export("malloc")
            .or_else(|| caller.get_export("proxy_on_memory_allocate"))
            .and_then(|e| e.into_func())
            .and_then(|f| f.typed::<i32, i32>(caller.as_context()).ok())
            .ok_or(MemError::AllocFailed)?,
    };
    let was = caller.data().allocating;
    caller.data_mut().allocating = true;
    let ptr = alloc.call(caller.as_context_mut(), size);
    caller.data_mut().allocating = was;
    let ptr = ptr.map_err(MemError::Trap)?.cast_unsigned();
    if ptr == 0 {
        return Err(MemError::AllocFailed);
    }
    // Re-borrow: the allocator may have grown memory.
    write(caller, ptr, bytes).map_err(|_| MemError::AllocFailed)?;
    Ok(ptr)
}

/// Hands `bytes` to the guest: allocate, copy, write `(ptr, len)` at `ret_ptr` / `ret_len`.
/// Empty data is `(0, 0)` without an allocation.
pub(crate) fn return_bytes(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
    ret_ptr: u32,
    ret_len: u32,
) -> Result<(), MemError> {
    if bytes.is_empty() {
        write_u32(caller, ret_ptr, 0)?;
        return write_u32(caller, ret_len, 0);
    }
    let len = u32::try_from(bytes.len()).map_err(|_| MemError::AllocFailed)?;
    let ptr = alloc_copy(caller, bytes)?;
    write_u32(caller, ret_ptr, ptr)?;
    write_u32(caller, ret_len, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(mem_len: usize, ptr: u32, len: u32, expected: &Option<Range<usize>>) {
        assert_eq!(
            &range(mem_len, ptr, len),
            expected,
            "range({mem_len}, {ptr}, {len})"
        );
    }

    #[test]
    fn bounds() {
        check(65536, 0, 0, &Some(0..0));
        check(65536, 0, 65536, &Some(0..65536));
        check(65536, 65536, 0, &Some(65536..65536));
        check(65536, 65535, 1, &Some(65535..65536));
        // one past the end
        check(65536, 65535, 2, &None);
        check(65536, 65537, 0, &None);
        // u32 overflow in ptr + len must not wrap (the SDK reads config with max 0xFFFFFFFF)
        check(65536, 16, u32::MAX, &None);
        check(65536, u32::MAX, u32::MAX, &None);
        check(65536, u32::MAX, 1, &None);
        check(0, 0, 1, &None);
        check(0, 0, 0, &Some(0..0));
    }
}
