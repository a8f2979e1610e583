//! The listener's bounds, as pure state: how many connections it holds
//! (all together and per client address) and which one makes room when it
//! is full. Like nginx's `limit_conn` and Caddy's read-header deadline, an
//! idle connection costs a client nothing to hold, so holding one earns
//! nothing: when a new connection finds the listener (or its address) full,
//! the oldest connection that has not yet sent its request headers is
//! closed to make room. A request whose headers arrived is never evicted,
//! so `/healthz`, which sends its request at once, is answered through a
//! flood of idle connections. Only when every held connection is being
//! answered is a new one refused.
//!
//! [`descriptor_cap`] keeps the cap below the process's open-file limit
//! with a reserve for cameras, MQTT, the outbox and the libraries.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;
use tokio::task::AbortHandle;

/// What [`Slots::admit`] decided for a new connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Held under this id; `evicted` is the waiting connection closed to
    /// make room, if one was.
    Held { id: u64, evicted: Option<u64> },
    /// Every held connection (of its address, or of all) is being
    /// answered: the new one is closed.
    Refused(Full),
}

/// Which bound refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Address,
    Listener,
}

impl Full {
    pub fn as_str(self) -> &'static str {
        match self {
            Full::Address => "per-address",
            Full::Listener => "total",
        }
    }
}

#[derive(Debug)]
struct Conn {
    ip: IpAddr,
    /// No complete request yet: may be evicted.
    waiting: bool,
    abort: Option<AbortHandle>,
}

/// The connections held (ids grow with age: the map's order is oldest first).
#[derive(Debug, Default)]
struct Table {
    next: u64,
    open: BTreeMap<u64, Conn>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Conn> {
        let c = self.open.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&c.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&c.ip);
            }
        }
        Some(c)
    }

    fn oldest_waiting(&self, of: Option<IpAddr>) -> Option<u64> {
        self.open
            .iter()
            .find(|(_, c)| c.waiting && of.is_none_or(|ip| c.ip == ip))
            .map(|(&id, _)| id)
    }
}

/// The listener's connection table, shared by the accept loop and the
/// connections' tasks.
#[derive(Debug)]
pub struct Slots {
    max_total: usize,
    max_per_address: usize,
    table: Mutex<Table>,
}

impl Slots {
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        Self {
            max_total: max_total.max(1),
            max_per_address: max_per_address.clamp(1, max_total.max(1)),
            table: Mutex::default(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection from `ip`: held (perhaps evicting the oldest
    /// waiting one, whose task is aborted), or refused.
    pub fn admit(&self, ip: IpAddr) -> Admission {
        let mut t = self.table();
        let mut evicted = None;
        if t.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_address {
            match t.oldest_waiting(Some(ip)) {
                Some(victim) => evicted = Some(victim),
                None => return Admission::Refused(Full::Address),
            }
        } else if t.open.len() >= self.max_total {
            match t.oldest_waiting(None) {
                Some(victim) => evicted = Some(victim),
                None => return Admission::Refused(Full::Listener),
            }
        }
        if let Some(victim) = evicted {
            if let Some(Conn {
                abort: Some(abort), ..
            }) = t.remove(victim)
            {
                abort.abort();
            }
        }
        let id = t.next;
        t.next += 1;
        t.open.insert(
            id,
            Conn {
                ip,
                waiting: true,
                abort: None,
            },
        );
        *t.per_ip.entry(ip).or_default() += 1;
        Admission::Held { id, evicted }
    }

    /// The task serving `id`, so that an eviction can stop it. Returns
    /// false when `id` was evicted before its task started.
    pub fn attach(&self, id: u64, abort: AbortHandle) -> bool {
        match self.table().open.get_mut(&id) {
            Some(c) => {
                c.abort = Some(abort);
                true
            }
            None => {
                abort.abort();
                false
            }
        }
    }

    /// `id`'s request headers arrived: it is being answered, not evicted.
    pub fn answering(&self, id: u64) {
        if let Some(c) = self.table().open.get_mut(&id) {
            c.waiting = false;
        }
    }

    /// `id` closed (a no-op when it was evicted).
    pub fn close(&self, id: u64) {
        self.table().remove(id);
    }

    /// Connections held now.
    pub fn open(&self) -> usize {
        self.table().open.len()
    }
}

/// Closes its connection's slot when the connection's task ends, however
/// it ends (answered, timed out, aborted by an eviction).
pub struct Ticket<'a> {
    pub slots: &'a Slots,
    pub id: u64,
    /// Where the count of held connections is shown.
    pub metrics: &'a crate::telemetry::Metrics,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.slots.close(self.id);
        self.metrics.set_http_open(self.slots.open());
    }
}

/// Descriptors kept for everything but the listener: cameras, MQTT, the
/// outbox, the snapshot encoder, the libraries a GPU backend opens.
pub const RESERVE: usize = 128;

/// `wanted` connections, lowered so that the listener never takes the
/// descriptors the rest of the daemon needs: at most the open-file soft
/// limit less those open now and [`RESERVE`]. Returns the cap and, when it
/// had to be lowered, the limit that lowered it.
pub fn descriptor_cap(wanted: usize) -> (usize, Option<u64>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given; nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (wanted, None);
    }
    let soft = lim.rlim_cur;
    if soft == libc::RLIM_INFINITY {
        return (wanted, None);
    }
    let open_now = std::fs::read_dir("/proc/self/fd").map_or(64, |d| d.count()) as u64;
    let room = soft.saturating_sub(open_now + RESERVE as u64).max(1) as usize;
    if room < wanted {
        (room, Some(soft))
    } else {
        (wanted, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn held(a: Admission) -> (u64, Option<u64>) {
        match a {
            Admission::Held { id, evicted } => (id, evicted),
            other => panic!("not held: {other:?}"),
        }
    }

    #[test]
    fn a_full_address_makes_room_by_closing_its_oldest_idle_connection() {
        let s = Slots::new(10, 2);
        let (a, _) = held(s.admit(ip(1)));
        let (b, _) = held(s.admit(ip(1)));
        // Another address is not affected.
        assert_eq!(held(s.admit(ip(2))).1, None);
        // The third from .1 evicts .1's oldest waiting one.
        let (_, evicted) = held(s.admit(ip(1)));
        assert_eq!(evicted, Some(a));
        // Once .1's held ones are being answered, a new one is refused.
        s.answering(b);
        let (c, evicted) = held(s.admit(ip(1)));
        assert_ne!(evicted, Some(b));
        s.answering(c);
        assert_eq!(s.admit(ip(1)), Admission::Refused(Full::Address));
        assert_eq!(s.open(), 3);
    }

    #[test]
    fn a_full_listener_evicts_the_oldest_idle_connection_of_any_address() {
        let s = Slots::new(3, 3);
        let (a, _) = held(s.admit(ip(1)));
        let (b, _) = held(s.admit(ip(2)));
        let (c, _) = held(s.admit(ip(3)));
        s.answering(a);
        // Full: .2's connection is the oldest still waiting.
        let (d, evicted) = held(s.admit(ip(4)));
        assert_eq!(evicted, Some(b));
        s.answering(c);
        s.answering(d);
        assert_eq!(s.admit(ip(5)), Admission::Refused(Full::Listener));
        // A closed one frees its slot.
        s.close(a);
        held(s.admit(ip(5)));
        assert_eq!(s.open(), 3);
    }

    #[test]
    fn an_evicted_connection_closing_later_does_not_free_another_slot() {
        let s = Slots::new(1, 1);
        let (a, _) = held(s.admit(ip(1)));
        let (b, evicted) = held(s.admit(ip(1)));
        assert_eq!(evicted, Some(a));
        s.close(a); // the aborted task's ticket, dropped late
        s.answering(b);
        assert_eq!(s.admit(ip(1)), Admission::Refused(Full::Address));
    }

    #[test]
    fn the_cap_stays_under_the_open_file_limit() {
        let (cap, _) = descriptor_cap(usize::MAX / 2);
        assert!(cap < usize::MAX / 2, "lowered to the descriptor budget");
        assert_eq!(descriptor_cap(1), (1, None));
    }
}
