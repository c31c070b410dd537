//! [`HttpStream`]: one HTTP exchange through the filter's stream callbacks.
//!
//! Each phase moves the server's header list or body into the stream state, calls the guest
//! through the VM's call wrapper, and settles the action: Continue, Buffer (body, more to come),
//! a local reply (run through the filter's own response callbacks, as Envoy), or a pause that
//! waits — without holding the store — until `proxy_continue_stream` or a local reply arrives
//! from a later top-level call (`on_http_call_response`, `on_tick`). Drop runs
//! `on_log → on_done → on_delete` (Envoy's order) unless the VM failed.

use std::rc::Rc;

use wasmtime::Store;

use super::state::{Access, Callback, HostState, Slot, StreamState};
use super::vm::{Exports, VmInner, call_opt, w};
use super::{Action, HeaderList, LocalReply, StreamError, StreamInfo};

/// One HTTP exchange through the filter. Not `Send`; lives on its VM's worker.
pub struct HttpStream {
    vm: Rc<VmInner>,
    id: u32,
    wake: Rc<tokio::sync::Notify>,
    create_error: Option<StreamError>,
    replied: bool,
}

impl std::fmt::Debug for HttpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStream")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
}

impl Phase {
    fn is_request(self) -> bool {
        matches!(
            self,
            Self::RequestHeaders | Self::RequestBody | Self::RequestTrailers
        )
    }

    fn is_body(self) -> bool {
        matches!(self, Self::RequestBody | Self::ResponseBody)
    }

    fn map(self, s: &mut StreamState) -> &mut Slot<HeaderList> {
        match self {
            Self::RequestHeaders | Self::RequestBody => &mut s.request_headers,
            Self::RequestTrailers => &mut s.request_trailers,
            Self::ResponseHeaders | Self::ResponseBody => &mut s.response_headers,
            Self::ResponseTrailers => &mut s.response_trailers,
        }
    }

    fn body(self, s: &mut StreamState) -> &mut Slot<Vec<u8>> {
        if self.is_request() {
            &mut s.request_body
        } else {
            &mut s.response_body
        }
    }

    /// Calls this phase's callback with `(ctx, n, eos)` (trailers: `(ctx, n)`).
    fn invoke(
        self,
        ex: &Exports,
        st: &mut Store<HostState>,
        id: i32,
        n: i32,
        eos: i32,
    ) -> wasmtime::Result<i32> {
        match self {
            Self::RequestHeaders => call_opt(ex.request_headers.as_ref(), st, (id, n, eos), 0),
            Self::RequestBody => call_opt(ex.request_body.as_ref(), st, (id, n, eos), 0),
            Self::RequestTrailers => call_opt(ex.request_trailers.as_ref(), st, (id, n), 0),
            Self::ResponseHeaders => call_opt(ex.response_headers.as_ref(), st, (id, n, eos), 0),
            Self::ResponseBody => call_opt(ex.response_body.as_ref(), st, (id, n, eos), 0),
            Self::ResponseTrailers => call_opt(ex.response_trailers.as_ref(), st, (id, n), 0),
        }
    }
}

impl HttpStream {
    /// Allocates a context id and calls `proxy_on_context_create(id, root)`.
    pub(crate) fn create(vm: Rc<VmInner>, info: StreamInfo) -> HttpStream {
        let wake = Rc::new(tokio::sync::Notify::new());
        let id = match vm.store.try_borrow_mut() {
            Ok(mut store) => {
                let st = store.data_mut();
                let id = st.next_context_id;
                st.next_context_id = id.wrapping_add(1).max(2);
                st.streams.insert(
                    id,
                    StreamState {
                        info,
                        wake: wake.clone(),
                        ..StreamState::default()
                    },
                );
                id
            }
            Err(_) => 0,
        };
        let root = w(vm.root as usize);
        let create_error = if id == 0 {
            Some(StreamError::VmFailed)
        } else {
            vm.call(id, Callback::ContextCreate, |ex, st| {
                call_opt(ex.context_create.as_ref(), st, (w(id as usize), root), ())
            })
            .err()
        };
        HttpStream {
            vm,
            id,
            wake,
            create_error,
            replied: false,
        }
    }

    /// `proxy_on_request_headers`: `headers` is updated with the filter's changes.
    pub async fn request_headers(
        &mut self,
        headers: &mut HeaderList,
        end_of_stream: bool,
    ) -> Result<Action, StreamError> {
        self.headers_phase(Phase::RequestHeaders, headers, end_of_stream)
            .await
    }

    /// `proxy_on_request_body`: `body` is everything buffered so far; [`Action::Buffer`] asks for
    /// more before the filter decides.
    pub async fn request_body(
        &mut self,
        body: &mut Vec<u8>,
        end_of_stream: bool,
    ) -> Result<Action, StreamError> {
        self.body_phase(Phase::RequestBody, body, end_of_stream)
            .await
    }

    /// `proxy_on_request_trailers`.
    pub async fn request_trailers(
        &mut self,
        trailers: &mut HeaderList,
    ) -> Result<Action, StreamError> {
        self.headers_phase(Phase::RequestTrailers, trailers, true)
            .await
    }

    /// `proxy_on_response_headers`: `headers` include `:status`. A pause waits for
    /// `proxy_continue_stream` even with body to come (Envoy's StopAllIteration), so this never
    /// returns [`Action::Buffer`].
    pub async fn response_headers(
        &mut self,
        headers: &mut HeaderList,
        end_of_stream: bool,
    ) -> Result<Action, StreamError> {
        self.headers_phase(Phase::ResponseHeaders, headers, end_of_stream)
            .await
    }

    /// `proxy_on_response_body`: `body` is everything buffered so far.
    pub async fn response_body(
        &mut self,
        body: &mut Vec<u8>,
        end_of_stream: bool,
    ) -> Result<Action, StreamError> {
        self.body_phase(Phase::ResponseBody, body, end_of_stream)
            .await
    }

    /// `proxy_on_response_trailers`.
    pub async fn response_trailers(
        &mut self,
        trailers: &mut HeaderList,
    ) -> Result<Action, StreamError> {
        self.headers_phase(Phase::ResponseTrailers, trailers, true)
            .await
    }

    fn ready(&self) -> Result<(), StreamError> {
        if let Some(e) = &self.create_error {
            return Err(e.clone());
        }
        if self.vm.failed.get() {
            return Err(StreamError::VmFailed);
        }
        Ok(())
    }

    fn begin(&self, phase: Phase) -> Result<(), StreamError> {
        self.ready()?;
        self.vm
            .with_stream(self.id, |s| {
                if phase.is_request() {
                    s.resume_request = false;
                } else {
                    s.resume_response = false;
                }
            })
            .ok_or(StreamError::VmFailed)
    }

    async fn headers_phase(
        &mut self,
        phase: Phase,
        headers: &mut HeaderList,
        eos: bool,
    ) -> Result<Action, StreamError> {
        self.begin(phase)?;
        let n = w(headers.len());
        let value = std::mem::take(headers);
        self.vm.with_stream(self.id, |s| {
            *phase.map(s) = Slot {
                value,
                access: Access::ReadWrite,
            }
        });
        let id = w(self.id as usize);
        let result = match self.vm.call(self.id, Callback::Stream, |ex, st| {
            phase.invoke(ex, st, id, n, i32::from(eos))
        }) {
            Ok(action) => self.settle(phase, action, eos).await,
            Err(e) => Err(e),
        };
        self.vm.with_stream(self.id, |s| {
            let slot = phase.map(s);
            slot.access = Access::None;
            headers.clone_from(&slot.value);
        });
        result
    }

    async fn body_phase(
        &mut self,
        phase: Phase,
        body: &mut Vec<u8>,
        eos: bool,
    ) -> Result<Action, StreamError> {
        self.begin(phase)?;
        let n = w(body.len());
        let value = std::mem::take(body);
        self.vm.with_stream(self.id, |s| {
            *phase.body(s) = Slot {
                value,
                access: Access::ReadWrite,
            }
        });
        let id = w(self.id as usize);
        let result = match self.vm.call(self.id, Callback::Stream, |ex, st| {
            phase.invoke(ex, st, id, n, i32::from(eos))
        }) {
            Ok(action) => self.settle(phase, action, eos).await,
            Err(e) => Err(e),
        };
        self.vm.with_stream(self.id, |s| {
            let slot = phase.body(s);
            slot.access = Access::None;
            *body = std::mem::take(&mut slot.value);
        });
        result
    }

    /// Turns a callback's action into the phase's result, waiting while paused.
    async fn settle(
        &mut self,
        phase: Phase,
        action: i32,
        eos: bool,
    ) -> Result<Action, StreamError> {
        loop {
            let (reply, closed, resumed) = self
                .vm
                .with_stream(self.id, |s| {
                    let reply = s.local_reply.take();
                    if reply.is_some() {
                        s.local_reply_sent = true;
                    }
                    let resumed = if phase.is_request() {
                        std::mem::take(&mut s.resume_request)
                    } else {
                        std::mem::take(&mut s.resume_response)
                    };
                    (reply, s.closed, resumed)
                })
                .ok_or(StreamError::VmFailed)?;
            if let Some(reply) = reply {
                self.replied = true;
                if phase.is_request() {
                    return self.reply_through_filter(reply).map(Action::LocalReply);
                }
                return Ok(Action::LocalReply(reply));
            }
            if closed {
                self.replied = true;
                return Ok(Action::LocalReply(closed_reply()));
            }
            if action == 0 || resumed {
                return Ok(Action::Continue);
            }
            // A headers pause waits for `proxy_continue_stream` even with body to come: Envoy
            // turns it into StopAllIteration (no body callbacks meanwhile).
            if phase.is_body() && !eos {
                return Ok(Action::Buffer);
            }
            if self.vm.failed.get() {
                return Err(StreamError::VmFailed);
            }
            self.wake.notified().await;
        }
    }

    /// Envoy sends a local reply through the encoder path: the filter's own response callbacks
    /// see it (one reply only: a second `send_local_response` there is ignored).
    fn reply_through_filter(&mut self, reply: LocalReply) -> Result<LocalReply, StreamError> {
        let mut headers: HeaderList =
            vec![(b":status".to_vec(), reply.status.to_string().into_bytes())];
        headers.extend(reply.headers);
        let n = w(headers.len());
        let has_body = !reply.body.is_empty();
        self.vm.with_stream(self.id, |s| {
            s.response_headers = Slot {
                value: headers,
                access: Access::ReadWrite,
            };
        });
        let id = w(self.id as usize);
        self.vm.call(self.id, Callback::Stream, |ex, st| {
            Phase::ResponseHeaders.invoke(ex, st, id, n, i32::from(!has_body))
        })?;
        let mut body = reply.body;
        if has_body {
            let len = w(body.len());
            let value = std::mem::take(&mut body);
            self.vm.with_stream(self.id, |s| {
                s.response_body = Slot {
                    value,
                    access: Access::ReadWrite,
                }
            });
            self.vm.call(self.id, Callback::Stream, |ex, st| {
                Phase::ResponseBody.invoke(ex, st, id, len, 1)
            })?;
            body = self
                .vm
                .with_stream(self.id, |s| {
                    s.response_body.access = Access::None;
                    std::mem::take(&mut s.response_body.value)
                })
                .unwrap_or_default();
        }
        let headers = self
            .vm
            .with_stream(self.id, |s| {
                s.response_headers.access = Access::None;
                s.response_headers.value.clone()
            })
            .unwrap_or_default();
        let status = headers
            .iter()
            .find(|(k, _)| k == b":status")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(reply.status);
        let headers = headers
            .into_iter()
            .filter(|(k, _)| !k.starts_with(b":"))
            .collect();
        Ok(LocalReply {
            status,
            headers,
            body,
            details: reply.details,
        })
    }
}

/// `proxy_close_stream`: the shim cannot reset an HTTP/1 exchange from here, so it answers 503
/// with details `wasm_close_stream`.
fn closed_reply() -> LocalReply {
    LocalReply {
        status: 503,
        headers: Vec::new(),
        body: Vec::new(),
        details: "wasm_close_stream".to_owned(),
    }
}

impl Drop for HttpStream {
    fn drop(&mut self) {
        if self.create_error.is_none() && !self.vm.failed.get() {
            self.vm.with_stream(self.id, |s| {
                for slot in [
                    &mut s.request_headers,
                    &mut s.request_trailers,
                    &mut s.response_headers,
                    &mut s.response_trailers,
                ] {
                    slot.access = Access::ReadOnly;
                }
            });
            let id = w(self.id as usize);
            let _ = self.vm.call(self.id, Callback::Log, |ex, st| {
                call_opt(ex.log.as_ref(), st, id, ())
            });
            let _ = self.vm.call(self.id, Callback::Done, |ex, st| {
                call_opt(ex.done.as_ref(), st, id, 1)
            });
            let _ = self.vm.call(self.id, Callback::Done, |ex, st| {
                call_opt(ex.delete.as_ref(), st, id, ())
            });
        }
        if let Ok(mut store) = self.vm.store.try_borrow_mut() {
            store.data_mut().streams.remove(&self.id);
        }
    }
}
