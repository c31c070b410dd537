//! WASI preview1 (`wasi_snapshot_preview1` and `wasi_unstable`) as cpp-host stubs it.
//!
//! `fd_write` to fd 1/2 logs at info/error (one trailing newline stripped); the environment and
//! arguments are empty; clocks and randomness are real; everything touching files or sockets
//! answers the errno cpp-host answers. Never the real stdout, environment or file system.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::Caller;

use super::context::emit;
use super::u;
use crate::host::LogLevel;
use crate::host::memory;
use crate::host::state::HostState;

/// WASI errno values.
pub(crate) mod errno {
    /// Success.
    pub(crate) const SUCCESS: i32 = 0;
    /// Bad file descriptor.
    pub(crate) const BADF: i32 = 8;
    /// Bad address.
    pub(crate) const FAULT: i32 = 21;
    /// Invalid argument.
    pub(crate) const INVAL: i32 = 28;
    /// No such file.
    pub(crate) const NOENT: i32 = 44;
    /// Function not supported.
    pub(crate) const NOSYS: i32 = 52;
    /// Not supported.
    pub(crate) const NOTSUP: i32 = 58;
}

type W = wasmtime::Result<i32>;

fn fault<T>(r: Result<T, memory::MemError>) -> Result<T, W> {
    match r {
        Ok(v) => Ok(v),
        Err(memory::MemError::Trap(t)) => Err(Err(t)),
        Err(_) => Err(Ok(errno::FAULT)),
    }
}

macro_rules! try_mem {
    ($e:expr) => {
        match fault($e) {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

/// `fd_write(fd, iovs, iovs_len, ret_nwritten)`: fd 1 ⇒ info log, fd 2 ⇒ error log, else BADF.
pub(crate) fn fd_write(
    mut caller: Caller<'_, HostState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    ret: i32,
) -> W {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Ok(errno::BADF),
    };
    let mut data = Vec::new();
    for i in 0..u(iovs_len).min(1024) {
        let base = u(iovs).wrapping_add(i.wrapping_mul(8));
        let ptr = try_mem!(memory::read_u32(&mut caller, base));
        let len = try_mem!(memory::read_u32(&mut caller, base.wrapping_add(4)));
        data.extend(try_mem!(memory::read(&mut caller, ptr, len)));
    }
    let written = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let line = data.strip_suffix(b"\n").unwrap_or(&data);
    emit(caller.data_mut(), level, line);
    try_mem!(memory::write_u32(&mut caller, u(ret), written));
    Ok(errno::SUCCESS)
}

/// `environ_sizes_get(ret_count, ret_buf_size)` and `args_sizes_get`: (0, 0).
pub(crate) fn sizes_get(mut caller: Caller<'_, HostState>, ret_count: i32, ret_size: i32) -> W {
    try_mem!(memory::write_u32(&mut caller, u(ret_count), 0));
    try_mem!(memory::write_u32(&mut caller, u(ret_size), 0));
    Ok(errno::SUCCESS)
}

/// `environ_get(environ, environ_buf)` and `args_get`: nothing to write.
pub(crate) fn list_get(_caller: Caller<'_, HostState>, _list: i32, _buf: i32) -> W {
    Ok(errno::SUCCESS)
}

fn monotonic_nanos() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `clock_time_get(id, precision, ret)`: 0 realtime, 1 monotonic, else NOTSUP.
pub(crate) fn clock_time_get(
    mut caller: Caller<'_, HostState>,
    id: i32,
    _precision: i64,
    ret: i32,
) -> W {
    let nanos = match id {
        0 => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0),
        1 => monotonic_nanos(),
        _ => return Ok(errno::NOTSUP),
    };
    try_mem!(memory::write_u64(&mut caller, u(ret), nanos));
    Ok(errno::SUCCESS)
}

/// `clock_res_get(id, ret)`: 1 ns for realtime and monotonic, else NOTSUP.
pub(crate) fn clock_res_get(mut caller: Caller<'_, HostState>, id: i32, ret: i32) -> W {
    if !(0..=1).contains(&id) {
        return Ok(errno::NOTSUP);
    }
    try_mem!(memory::write_u64(&mut caller, u(ret), 1));
    Ok(errno::SUCCESS)
}

/// `random_get(buf, len)`: len > 64 KiB ⇒ INVAL.
pub(crate) fn random_get(mut caller: Caller<'_, HostState>, buf: i32, len: i32) -> W {
    let len = u(len);
    if len > 64 * 1024 {
        return Ok(errno::INVAL);
    }
    let state = RandomState::new();
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let mut counter = 0u64;
    while bytes.len() < usize::try_from(len).unwrap_or(0) {
        let mut h = state.build_hasher();
        h.write_u64(counter);
        h.write_u64(monotonic_nanos());
        bytes.extend_from_slice(&h.finish().to_le_bytes());
        counter += 1;
    }
    bytes.truncate(usize::try_from(len).unwrap_or(0));
    try_mem!(memory::write(&mut caller, u(buf), &bytes));
    Ok(errno::SUCCESS)
}

/// `proc_exit(code)`: logged; returns (the guest then traps on its own `unreachable`).
pub(crate) fn proc_exit(mut caller: Caller<'_, HostState>, code: i32) {
    let msg = format!("wasm module called proc_exit({code})");
    emit(caller.data_mut(), LogLevel::Warn, msg.as_bytes());
}

/// `fd_fdstat_get(fd, ret)`: a character device for fd 1/2, else BADF.
pub(crate) fn fd_fdstat_get(mut caller: Caller<'_, HostState>, fd: i32, ret: i32) -> W {
    if fd != 1 && fd != 2 {
        return Ok(errno::BADF);
    }
    // fdstat: filetype u8 (2 = character device), pad, flags u16, pad, rights_base u64,
    // rights_inheriting u64 (fd_write = bit 6).
    let mut stat = [0u8; 24];
    stat[0] = 2;
    stat[8..16].copy_from_slice(&(1u64 << 6).to_le_bytes());
    try_mem!(memory::write(&mut caller, u(ret), &stat));
    Ok(errno::SUCCESS)
}

/// `poll_oneoff(in, out, nsubscriptions, ret_nevents)`: no events.
pub(crate) fn poll_oneoff(
    mut caller: Caller<'_, HostState>,
    _in: i32,
    _out: i32,
    _n: i32,
    ret: i32,
) -> W {
    try_mem!(memory::write_u32(&mut caller, u(ret), 0));
    Ok(errno::SUCCESS)
}

/// `sched_yield()`: success.
pub(crate) fn sched_yield(_caller: Caller<'_, HostState>) -> W {
    Ok(errno::SUCCESS)
}

/// Registers every WASI preview1 name under `module`, each with its real signature.
pub(crate) fn add_to_linker(
    linker: &mut wasmtime::Linker<HostState>,
    module: &str,
) -> wasmtime::Result<()> {
    use errno::{BADF, NOENT, NOSYS, NOTSUP};
    type C<'a> = Caller<'a, HostState>;
    linker.func_wrap(module, "fd_write", fd_write)?;
    linker.func_wrap(module, "environ_sizes_get", sizes_get)?;
    linker.func_wrap(module, "environ_get", list_get)?;
    linker.func_wrap(module, "args_sizes_get", sizes_get)?;
    linker.func_wrap(module, "args_get", list_get)?;
    linker.func_wrap(module, "clock_time_get", clock_time_get)?;
    linker.func_wrap(module, "clock_res_get", clock_res_get)?;
    linker.func_wrap(module, "random_get", random_get)?;
    linker.func_wrap(module, "proc_exit", proc_exit)?;
    linker.func_wrap(module, "proc_raise", |_: C<'_>, _sig: i32| -> W {
        Ok(NOSYS)
    })?;
    linker.func_wrap(module, "sched_yield", sched_yield)?;
    linker.func_wrap(module, "poll_oneoff", poll_oneoff)?;
    linker.func_wrap(module, "fd_fdstat_get", fd_fdstat_get)?;
    // cpp-host: NOSYS for reads and flag changes, BADF for prestat/filestat, NOENT for path_open.
    linker.func_wrap(
        module,
        "fd_read",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32| -> W { Ok(NOSYS) },
    )?;
    linker.func_wrap(
        module,
        "fd_pread",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i64, _: i32| -> W { Ok(NOSYS) },
    )?;
    linker.func_wrap(
        module,
        "fd_pwrite",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i64, _: i32| -> W { Ok(NOSYS) },
    )?;
    linker.func_wrap(
        module,
        "fd_prestat_dir_name",
        |_: C<'_>, _: i32, _: i32, _: i32| -> W { Ok(NOSYS) },
    )?;
    linker.func_wrap(
        module,
        "fd_fdstat_set_flags",
        |_: C<'_>, _: i32, _: i32| -> W { Ok(NOSYS) },
    )?;
    linker.func_wrap(
        module,
        "fd_fdstat_set_rights",
        |_: C<'_>, _: i32, _: i64, _: i64| -> W { Ok(NOSYS) },
    )?;
    linker.func_wrap(module, "fd_prestat_get", |_: C<'_>, _: i32, _: i32| -> W {
        Ok(BADF)
    })?;
    linker.func_wrap(module, "fd_filestat_get", |_: C<'_>, _: i32, _: i32| -> W {
        Ok(BADF)
    })?;
    linker.func_wrap(
        module,
        "fd_filestat_set_size",
        |_: C<'_>, _: i32, _: i64| -> W { Ok(BADF) },
    )?;
    linker.func_wrap(
        module,
        "fd_filestat_set_times",
        |_: C<'_>, _: i32, _: i64, _: i64, _: i32| -> W { Ok(BADF) },
    )?;
    linker.func_wrap(
        module,
        "fd_advise",
        |_: C<'_>, _: i32, _: i64, _: i64, _: i32| -> W { Ok(NOSYS) },
    )?;
    linker.func_wrap(
        module,
        "fd_allocate",
        |_: C<'_>, _: i32, _: i64, _: i64| -> W { Ok(NOSYS) },
    )?;
    linker.func_wrap(module, "fd_close", |_: C<'_>, _: i32| -> W { Ok(NOSYS) })?;
    linker.func_wrap(module, "fd_datasync", |_: C<'_>, _: i32| -> W { Ok(NOSYS) })?;
    linker.func_wrap(module, "fd_sync", |_: C<'_>, _: i32| -> W { Ok(NOSYS) })?;
    linker.func_wrap(
        module,
        "fd_readdir",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i64, _: i32| -> W { Ok(NOSYS) },
    )?;
    linker.func_wrap(module, "fd_renumber", |_: C<'_>, _: i32, _: i32| -> W {
        Ok(NOSYS)
    })?;
    linker.func_wrap(
        module,
        "fd_seek",
        |_: C<'_>, _: i32, _: i64, _: i32, _: i32| -> W { Ok(NOSYS) },
    )?;
    linker.func_wrap(module, "fd_tell", |_: C<'_>, _: i32, _: i32| -> W {
        Ok(NOSYS)
    })?;
    linker.func_wrap(
        module,
        "path_open",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i64, _: i64, _: i32, _: i32| -> W {
            Ok(NOENT)
        },
    )?;
    linker.func_wrap(
        module,
        "path_create_directory",
        |_: C<'_>, _: i32, _: i32, _: i32| -> W { Ok(NOTSUP) },
    )?;
    linker.func_wrap(
        module,
        "path_filestat_get",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32| -> W { Ok(NOTSUP) },
    )?;
    linker.func_wrap(
        module,
        "path_filestat_set_times",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i64, _: i64, _: i32| -> W { Ok(NOTSUP) },
    )?;
    linker.func_wrap(
        module,
        "path_link",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> W { Ok(NOTSUP) },
    )?;
    linker.func_wrap(
        module,
        "path_readlink",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> W { Ok(NOTSUP) },
    )?;
    linker.func_wrap(
        module,
        "path_remove_directory",
        |_: C<'_>, _: i32, _: i32, _: i32| -> W { Ok(NOTSUP) },
    )?;
    linker.func_wrap(
        module,
        "path_rename",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> W { Ok(NOTSUP) },
    )?;
    linker.func_wrap(
        module,
        "path_symlink",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32| -> W { Ok(NOTSUP) },
    )?;
    linker.func_wrap(
        module,
        "path_unlink_file",
        |_: C<'_>, _: i32, _: i32, _: i32| -> W { Ok(NOTSUP) },
    )?;
    linker.func_wrap(
        module,
        "sock_accept",
        |_: C<'_>, _: i32, _: i32, _: i32| -> W { Ok(NOTSUP) },
    )?;
    linker.func_wrap(
        module,
        "sock_recv",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> W { Ok(NOTSUP) },
    )?;
    linker.func_wrap(
        module,
        "sock_send",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32| -> W { Ok(NOTSUP) },
    )?;
    linker.func_wrap(module, "sock_shutdown", |_: C<'_>, _: i32, _: i32| -> W {
        Ok(NOTSUP)
    })?;
    Ok(())
}
