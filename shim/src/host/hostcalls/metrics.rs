//! Metrics: `proxy_define_metric`, `proxy_increment_metric`, `proxy_record_metric`,
//! `proxy_get_metric`.
//!
//! Ids are per VM with the type in the low 2 bits (counters 4, 8 …, gauges 5, 9 …, histograms
//! 6, 10 …); values live in the plugin's process-wide registry (`state::Shared`). Counter
//! increments must be positive; `record_metric` on a counter adds (Envoy).

use wasmtime::Caller;

use super::{Hc, allowed, mem, ok, u};
use crate::host::state::{HostState, Status};
use crate::host::{MetricKind, memory};

fn kind_of(id: u32) -> Option<MetricKind> {
    match id & 3 {
        0 => Some(MetricKind::Counter),
        1 => Some(MetricKind::Gauge),
        2 => Some(MetricKind::Histogram),
        _ => None,
    }
}

/// `proxy_define_metric(type, name, ret_id_ptr)`: type > 2 ⇒ BadArgument; a name defined again
/// answers the same id.
pub(crate) fn proxy_define_metric(
    mut caller: Caller<'_, HostState>,
    kind: i32,
    name_ptr: i32,
    name_size: i32,
    ret_id: i32,
) -> Hc {
    allowed(&caller, "proxy_define_metric")?;
    let (slot, kind) = match kind {
        0 => (0, MetricKind::Counter),
        1 => (1, MetricKind::Gauge),
        2 => (2, MetricKind::Histogram),
        _ => return ok(Status::BadArgument),
    };
    let name = mem!(memory::read(&mut caller, u(name_ptr), u(name_size)));
    let name = String::from_utf8_lossy(&name).into_owned();
    let state = caller.data_mut();
    let id = match state.metric_names.get(&(kind, name.clone())) {
        Some(id) => *id,
        None => {
            let Some(next) = state.next_metric.get_mut(slot) else {
                return ok(Status::BadArgument);
            };
            let id = *next;
            *next = next.wrapping_add(4);
            let index = state.shared.metric_index(kind, &name);
            state.metric_ids.insert(id, index);
            state.metric_names.insert((kind, name), id);
            id
        }
    };
    mem!(memory::write_u32(&mut caller, u(ret_id), id));
    ok(Status::Ok)
}

/// `proxy_increment_metric(id, i64 delta)`: counter needs delta > 0; histogram ⇒ BadArgument;
/// unknown ⇒ NotFound.
pub(crate) fn proxy_increment_metric(caller: Caller<'_, HostState>, id: i32, delta: i64) -> Hc {
    allowed(&caller, "proxy_increment_metric")?;
    let state = caller.data();
    let Some(index) = state.metric_ids.get(&u(id)).copied() else {
        return ok(Status::NotFound);
    };
    let status = match kind_of(u(id)) {
        Some(MetricKind::Counter) if delta > 0 => Status::Ok,
        Some(MetricKind::Gauge) => Status::Ok,
        _ => Status::BadArgument,
    };
    if status == Status::Ok {
        state
            .shared
            .with_metric(index, |m| m.value = m.value.saturating_add(delta));
    }
    ok(status)
}

/// `proxy_record_metric(id, u64 value)`: counter adds, gauge sets, histogram records.
pub(crate) fn proxy_record_metric(caller: Caller<'_, HostState>, id: i32, value: i64) -> Hc {
    allowed(&caller, "proxy_record_metric")?;
    let state = caller.data();
    let Some(index) = state.metric_ids.get(&u(id)).copied() else {
        return ok(Status::NotFound);
    };
    let kind = kind_of(u(id));
    state.shared.with_metric(index, |m| match kind {
        Some(MetricKind::Gauge) => m.value = value,
        _ => m.value = m.value.saturating_add(value),
    });
    ok(Status::Ok)
}

/// `proxy_get_metric(id, ret_u64_ptr)`: histogram ⇒ BadArgument; unknown ⇒ NotFound.
pub(crate) fn proxy_get_metric(mut caller: Caller<'_, HostState>, id: i32, ret: i32) -> Hc {
    allowed(&caller, "proxy_get_metric")?;
    let state = caller.data();
    let Some(index) = state.metric_ids.get(&u(id)).copied() else {
        return ok(Status::NotFound);
    };
    if kind_of(u(id)) == Some(MetricKind::Histogram) {
        return ok(Status::BadArgument);
    }
    let value = state.shared.with_metric(index, |m| m.value).unwrap_or(0);
    mem!(memory::write_u64(
        &mut caller,
        u(ret),
        value.cast_unsigned()
    ));
    ok(Status::Ok)
}
