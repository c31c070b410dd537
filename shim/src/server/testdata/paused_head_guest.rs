//! A minimal proxy-wasm filter (no SDK, no_std) for the shim's response-headers pause test
//! (Envoy parity: a pause there is StopAllIteration). The response headers callback removes
//! `content-length` and pauses when body is to come; the next tick resumes the stream with
//! `proxy_continue_stream`. The body callback buffers until end of stream, then replaces the body
//! with `body after continue` or, if it ran while the headers were still paused,
//! `body before continue`.
//! Build (from this directory):
//! rustc --edition 2024 --target wasm32-wasip1 --crate-type cdylib -C opt-level=z -C panic=abort -C strip=symbols paused_head_guest.rs
#![no_std]

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_len: usize) -> u32;
    fn proxy_set_buffer_bytes(
        buffer: u32,
        start: usize,
        len: usize,
        data: *const u8,
        data_len: usize,
    ) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_set_effective_context(ctx: u32) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
}

static mut HEAP: [u8; 65536] = [0; 65536];
static mut NEXT: usize = 0;
/// The context whose response headers are paused (0: none).
static mut PAUSED: u32 = 0;
/// The last context the tick resumed.
static mut RESUMED: u32 = 0;

#[unsafe(no_mangle)]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    unsafe {
        if NEXT + size > 65536 {
            NEXT = 0;
        }
        let p = (&raw mut HEAP).cast::<u8>().add(NEXT);
        NEXT += size;
        p
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_context_create(_ctx: u32, _root: u32) {}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_vm_start(_root: u32, _size: usize) -> u32 {
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_configure(_root: u32, _size: usize) -> u32 {
    unsafe { proxy_set_tick_period_milliseconds(20) };
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_tick(_root: u32) {
    unsafe {
        if PAUSED != 0 {
            RESUMED = PAUSED;
            PAUSED = 0;
            proxy_set_effective_context(RESUMED);
            proxy_continue_stream(1);
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_request_headers(_ctx: u32, _n: usize, _eos: u32) -> u32 {
    0
}

const LENGTH: &[u8] = b"content-length";

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_response_headers(ctx: u32, _n: usize, eos: u32) -> u32 {
    unsafe { proxy_remove_header_map_value(2, LENGTH.as_ptr(), LENGTH.len()) };
    if eos != 0 {
        return 0;
    }
    unsafe { PAUSED = ctx };
    1
}

#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_response_body(ctx: u32, size: usize, eos: u32) -> u32 {
    if eos == 0 {
        return 1;
    }
    let body: &[u8] = if unsafe { RESUMED } == ctx {
        b"body after continue"
    } else {
        b"body before continue"
    };
    unsafe { proxy_set_buffer_bytes(1, 0, size, body.as_ptr(), body.len()) };
    0
}
