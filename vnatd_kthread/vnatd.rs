// SPDX-License-Identifier: GPL-2.0

//! `vnatd`, the VNAT daemon (paper section 4.3): one kernel thread per
//! network namespace, listening on TCP port 2031 (module parameter
//! `vcmp_port`) and speaking VCMP.
//!
//! The thread sleeps until one of its sockets has work (their callbacks wake
//! it) or a second passes. It then accepts pending connections, up to
//! `vcmp_max_clients`, refusing and counting the rest, reads what each client
//! sent, decodes it with the shared wire-format code (`vnat/vcmp.rs`), and
//! closes connections that send malformed bytes, that the peer closed, or
//! that stayed silent for `vcmp_idle_timeout_ms`. Nothing it cannot parse is
//! answered; everything is counted in `/proc/net/vnat/stats`.
//!
//! For now a well-formed `VNAT_UPD` is checked against the namespace's
//! virtual connections and counted; migration itself comes later.

#[path = "socket.rs"]
mod socket;

use crate::{
    config::{VCMP_IDLE_TIMEOUT_MS, VCMP_MAX_CLIENTS},
    netns::{Counter, NetState},
    vcmp::{Message, StreamReader, MSG_LEN},
};
use core::ptr::NonNull;
use kernel::{
    bindings,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
    time::{msecs_to_jiffies, Delta, Instant, Monotonic},
};
use socket::{Received, Socket, Waker, Watch};

/// What the thread shares with its [`Vnatd`] handle.
struct Shared {
    /// The namespace's state, which outlives the thread (see [`Vnatd::start`]).
    state: NonNull<NetState>,
    port: u16,
    listening: Atomic<bool>,
    waker: Waker,
}

/// A running vnatd thread; dropping it stops the thread, which closes all of
/// its sockets first.
///
/// # Invariants
///
/// `task` is a kthread created by `kthread_create_on_node()` and not yet
/// stopped; it runs [`vnatd_thread`] with `shared`, which it uses until it
/// returns.
pub(crate) struct Vnatd {
    task: NonNull<bindings::task_struct>,
    shared: KBox<Shared>,
}

// SAFETY: The handle only stops the thread and reads an atomic; both may be
// done from any thread.
unsafe impl Send for Vnatd {}
// SAFETY: As above.
unsafe impl Sync for Vnatd {}

impl Vnatd {
    /// Starts the daemon of the namespace of `state`.
    ///
    /// `state` must outlive the returned value: it owns it.
    pub(crate) fn start(state: &NetState) -> Result<Self> {
        let net = state.net();
        let shared = KBox::new(
            Shared {
                state: NonNull::from(state),
                port: crate::vcmp_port(),
                listening: Atomic::new(false),
                waker: Waker::new()?,
            },
            GFP_KERNEL,
        )?;
        let data: *const Shared = &*shared;
        // SAFETY: `vnatd_thread` matches the kthread signature; `data` stays
        // valid until the thread is stopped, since `Drop` stops it before the
        // box is freed. The format takes one `unsigned int`.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(vnatd_thread),
                data.cast_mut().cast(),
                bindings::NUMA_NO_NODE,
                c"vnatd/%u".as_char_ptr(),
                net.inum(),
            )
        };
        let task = NonNull::new(kernel::error::from_err_ptr(task)?).ok_or(ENOMEM)?;
        // The thread has not run yet; from now on its socket callbacks wake it.
        shared.waker.set_task(task);
        // SAFETY: `task` is a valid, newly created kthread.
        unsafe { bindings::wake_up_process(task.as_ptr()) };
        // INVARIANT: `task` runs `vnatd_thread` with `shared` until stopped.
        Ok(Self { task, shared })
    }

    /// Whether the daemon is listening on its port.
    pub(crate) fn listening(&self) -> bool {
        self.shared.listening.load(Relaxed)
    }
}

impl Drop for Vnatd {
    fn drop(&mut self) {
        // SAFETY: `task` is a kthread that was not stopped yet (type
        // invariant). `kthread_stop()` wakes it and waits until it returned,
        // also when it never ran.
        unsafe { bindings::kthread_stop(self.task.as_ptr()) };
    }
}

/// The kthread function.
///
/// # Safety
///
/// `data` must point to the `Shared` of the [`Vnatd`] that created the
/// thread (see the type invariant there).
unsafe extern "C" fn vnatd_thread(data: *mut c_void) -> c_int {
    // SAFETY: `data` is the `Shared` of the `Vnatd` that created the thread,
    // valid until `kthread_stop()` returns, i.e. after this function.
    let shared = unsafe { &*data.cast::<Shared>() };
    // SAFETY: The state owns the `Vnatd`, which stops this thread before the
    // state goes away.
    let state = unsafe { shared.state.as_ref() };
    Daemon::new(shared, state, &shared.waker).run();
    0
}

/// How long the thread sleeps at most, and how often it retries to listen.
const TICK_MS: u32 = 1000;
/// Listen backlog of the VCMP socket.
const BACKLOG: i32 = 128;

/// A VCMP client connection.
struct Client<'a> {
    sock: Watch<'a>,
    reader: StreamReader,
    last_heard: Instant<Monotonic>,
}

/// The thread's own state: its sockets live and die with it.
struct Daemon<'a> {
    shared: &'a Shared,
    state: &'a NetState,
    waker: &'a Waker,
    listener: Option<Watch<'a>>,
    listen_error_logged: bool,
    clients: KVec<Client<'a>>,
}

/// Why a client connection is closed.
enum Close {
    Eof,
    Malformed,
    Error,
}

impl<'a> Daemon<'a> {
    fn new(shared: &'a Shared, state: &'a NetState, waker: &'a Waker) -> Self {
        Self {
            shared,
            state,
            waker,
            listener: None,
            listen_error_logged: false,
            clients: KVec::new(),
        }
    }

    fn should_stop() -> bool {
        // SAFETY: Called from a kthread.
        unsafe { bindings::kthread_should_stop() }
    }

    fn run(mut self) {
        while !Self::should_stop() {
            if self.listener.is_none() {
                self.listen();
            }
            self.accept();
            self.serve();
            self.waker.wait(msecs_to_jiffies(TICK_MS) as c_long);
        }
        // Clients first: the listener's release disposes of connections that
        // were never accepted. Then the waker may go.
        self.clients.clear();
        self.listener = None;
        self.shared.listening.store(false, Relaxed);
    }

    fn listen(&mut self) {
        let net = self.state.net();
        match Socket::listen(net, self.shared.port, BACKLOG) {
            Ok(sock) => {
                self.listener = Some(self.waker.watch(sock));
                self.shared.listening.store(true, Relaxed);
                pr_info!(
                    "netns {}: vnatd listening on port {}\n",
                    net.inum(),
                    self.shared.port
                );
            }
            Err(e) => {
                self.state.count(Counter::VcmpListenFailed, 1);
                if !self.listen_error_logged {
                    self.listen_error_logged = true;
                    pr_warn!(
                        "netns {}: vnatd cannot listen on port {}: {:?}; retrying every second\n",
                        net.inum(),
                        self.shared.port,
                        e
                    );
                }
            }
        }
    }

    fn accept(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        while let Ok(Some(sock)) = listener.socket().accept() {
            // Watch at once: children inherit the listener's callbacks, which
            // must be detached before any of them is released.
            let sock = self.waker.watch(sock);
            if self.clients.len() >= VCMP_MAX_CLIENTS.get() as usize {
                self.state.count(Counter::VcmpClientsRefused, 1);
                continue;
            }
            let client = Client {
                sock,
                reader: StreamReader::new(),
                last_heard: Instant::now(),
            };
            match self.clients.push(client, GFP_KERNEL) {
                Ok(()) => self.state.count(Counter::VcmpClientsAccepted, 1),
                Err(_) => self.state.count(Counter::VcmpClientsRefused, 1),
            }
        }
    }

    fn serve(&mut self) {
        let idle = Delta::from_millis(i64::from(VCMP_IDLE_TIMEOUT_MS.get()));
        let mut i = 0;
        while i < self.clients.len() {
            let verdict = self.serve_one(i);
            let idle_out = self.clients[i].last_heard.elapsed() > idle;
            match verdict {
                Ok(()) if !idle_out => i += 1,
                r => {
                    if let Err(why) = r {
                        if let Close::Malformed = why {
                            self.state.count(Counter::VcmpMalformed, 1);
                        }
                    } else {
                        self.state.count(Counter::VcmpClientsIdleClosed, 1);
                    }
                    // Detaches and releases the socket.
                    drop(self.clients.remove(i));
                }
            }
        }
    }

    /// Reads everything client `i` sent; `Err` means close it.
    fn serve_one(&mut self, i: usize) -> core::result::Result<(), Close> {
        let state = self.state;
        let mut buf = [0u8; 4 * MSG_LEN];
        loop {
            let client = &mut self.clients[i];
            let n = match client.sock.socket().recv(&mut buf) {
                Ok(Received::Data(n)) => n,
                Ok(Received::WouldBlock) => {
                    return if client.sock.socket().is_dead() {
                        Err(Close::Eof)
                    } else {
                        Ok(())
                    };
                }
                Ok(Received::Eof) => return Err(Close::Eof),
                Err(_) => return Err(Close::Error),
            };
            client.last_heard = Instant::now();
            let mut malformed = false;
            client.reader.feed(&buf[..n], |m| match m {
                Ok(msg) => {
                    state.count(Counter::VcmpMessages, 1);
                    handle(state, msg);
                }
                Err(_) => malformed = true,
            });
            if malformed {
                return Err(Close::Malformed);
            }
        }
    }
}

/// Acts on one well-formed message.
fn handle(state: &NetState, msg: Message) {
    match msg {
        Message::Update(u) => {
            // The sender's virtual endpoint is our remote one, and vice versa.
            if state
                .connections
                .find(u.remote_virtual, u.local_virtual)
                .is_none()
            {
                state.count(Counter::VcmpUnknownConnection, 1);
            }
        }
        // Replies answer updates this host sent; none are sent yet.
        Message::UpdateReply(_) => {}
    }
}
