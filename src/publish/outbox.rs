//! The outbox's rules: pure state, no sockets or files (like rumqttc's
//! `state.rs`), so they are unit-tested directly. The publisher mirrors
//! every change into the on-disk store.
//!
//! - `push` appends; past the limits (count, bytes) it drops the oldest or
//!   refuses the new message, as configured, and reports what it dropped;
//!   `expire` drops messages older than the age limit.
//! - `next_to_send` hands out unsent messages in order, at most `window`
//!   outstanding at a time.
//! - The transport reports each publish it writes (`on_written`, in the
//!   order messages were handed over, with the packet id it chose) and each
//!   PUBACK (`on_acked`); a QoS 1 message leaves the outbox only then.
//! - `on_disconnect` makes every outstanding message unsent again: it will
//!   be sent again, in order, after the next connect (at-least-once; a
//!   subscriber de-duplicates by (device, camera, seq)).

use super::store::Stored;
use super::Message;
use std::collections::{HashMap, VecDeque};

/// Bounds of the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_events: usize,
    pub max_bytes: usize,
    /// Milliseconds; 0 = no age limit.
    pub max_age_ms: u64,
    /// When full: refuse the new message instead of dropping the oldest.
    pub refuse_new: bool,
}

impl Limits {
    pub fn count(max_events: usize) -> Self {
        Self {
            max_events,
            max_bytes: usize::MAX,
            max_age_ms: 0,
            refuse_new: false,
        }
    }
}

/// What `push` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    /// Queued with this id; these older ids were dropped to make room.
    Queued { id: u64, dropped: Vec<u64> },
    /// Full and configured to refuse new messages.
    Refused,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    created_ms: u64,
    msg: Message,
    sent: bool,
}

fn size(m: &Message) -> usize {
    m.topic.len() + m.payload.len()
}

#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Entry>,
    limits: Limits,
    window: usize,
    bytes: usize,
    next_id: u64,
    /// Handed to the transport, not yet written: ids (None for untracked).
    handed: VecDeque<Option<u64>>,
    /// Written, waiting for PUBACK: packet id → message id.
    inflight: HashMap<u16, u64>,
    dropped: u64,
    acked: u64,
}

impl Outbox {
    pub fn new(limits: Limits, window: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            limits,
            window: window.max(1),
            bytes: 0,
            next_id: 1,
            handed: VecDeque::new(),
            inflight: HashMap::new(),
            dropped: 0,
            acked: 0,
        }
    }

    /// Puts back what the store held (oldest first) before anything new.
    pub fn restore(&mut self, stored: Vec<Stored>) {
        for s in stored {
            self.next_id = self.next_id.max(s.id + 1);
            self.bytes += size(&s.msg);
            self.queue.push_back(Entry {
                id: s.id,
                created_ms: s.created_ms,
                msg: s.msg,
                sent: false,
            });
        }
    }

    fn full(&self, extra: usize) -> bool {
        self.queue.len() + 1 > self.limits.max_events || self.bytes + extra > self.limits.max_bytes
    }

    /// Queues a message created at `created_ms`.
    pub fn push(&mut self, msg: Message, created_ms: u64) -> Pushed {
        let extra = size(&msg);
        let mut dropped = vec![];
        while self.full(extra) && !self.queue.is_empty() {
            if self.limits.refuse_new {
                self.dropped += 1;
                return Pushed::Refused;
            }
            let old = self.queue.pop_front().expect("not empty");
            self.bytes -= size(&old.msg);
            self.dropped += 1;
            dropped.push(old.id);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.bytes += extra;
        self.queue.push_back(Entry {
            id,
            created_ms,
            msg,
            sent: false,
        });
        Pushed::Queued { id, dropped }
    }

    /// Drops messages older than the age limit; returns their ids.
    pub fn expire(&mut self, now_ms: u64) -> Vec<u64> {
        let mut gone = vec![];
        if self.limits.max_age_ms == 0 {
            return gone;
        }
        while let Some(e) = self.queue.front() {
            if now_ms.saturating_sub(e.created_ms) <= self.limits.max_age_ms {
                break;
            }
            let e = self.queue.pop_front().expect("front exists");
            self.bytes -= size(&e.msg);
            self.dropped += 1;
            gone.push(e.id);
        }
        gone
    }

    /// The next message to hand to the transport, if the window allows.
    pub fn next_to_send(&mut self) -> Option<Message> {
        if self.handed.len() + self.inflight.len() >= self.window {
            return None;
        }
        let pos = self.queue.iter().position(|e| !e.sent)?;
        let entry = &mut self.queue[pos];
        let msg = entry.msg.clone();
        if msg.reliable {
            entry.sent = true;
            self.handed.push_back(Some(entry.id));
        } else {
            // QoS 0: handed over once, never retried.
            let e = self.queue.remove(pos).expect("position is valid");
            self.bytes -= size(&e.msg);
            self.handed.push_back(None);
        }
        Some(msg)
    }

    /// Records a publish that did not go through the outbox (e.g. status),
    /// so that the order of written packets still lines up.
    pub fn note_untracked(&mut self) {
        self.handed.push_back(None);
    }

    /// The transport wrote the next handed message with packet id `pkid`
    /// (0 for QoS 0).
    pub fn on_written(&mut self, pkid: u16) {
        if let Some(Some(id)) = self.handed.pop_front() {
            if pkid != 0 {
                self.inflight.insert(pkid, id);
            }
        }
    }

    /// The broker acknowledged `pkid`; returns the id of the delivered message.
    pub fn on_acked(&mut self, pkid: u16) -> Option<u64> {
        let id = self.inflight.remove(&pkid)?;
        let pos = self.queue.iter().position(|e| e.id == id)?;
        let e = self.queue.remove(pos).expect("position is valid");
        self.bytes -= size(&e.msg);
        self.acked += 1;
        Some(id)
    }

    /// The connection dropped: everything outstanding will be sent again.
    pub fn on_disconnect(&mut self) {
        self.handed.clear();
        self.inflight.clear();
        for e in &mut self.queue {
            e.sent = false;
        }
    }

    /// Messages not yet acknowledged.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(i: u8, reliable: bool) -> Message {
        Message {
            topic: format!("t/{i}"),
            payload: vec![i],
            reliable,
            retain: false,
            event: None,
        }
    }

    fn queued(p: Pushed) -> (u64, Vec<u64>) {
        match p {
            Pushed::Queued { id, dropped } => (id, dropped),
            Pushed::Refused => panic!("refused"),
        }
    }

    #[test]
    fn stays_until_acked_and_resends_in_order_after_disconnect() {
        let mut o = Outbox::new(Limits::count(10), 2);
        for i in 1..=3 {
            o.push(m(i, true), 0);
        }
        assert_eq!(o.next_to_send().unwrap().payload, vec![1]);
        assert_eq!(o.next_to_send().unwrap().payload, vec![2]);
        assert_eq!(o.next_to_send(), None, "window of 2");
        o.on_written(7);
        o.on_written(8);
        assert_eq!(o.on_acked(7), Some(1));
        assert_eq!(o.len(), 2);
        assert_eq!(o.next_to_send().unwrap().payload, vec![3]);
        o.on_disconnect();
        // 2 was written but not acked, 3 handed but not written: both again, in order.
        assert_eq!(o.next_to_send().unwrap().payload, vec![2]);
        assert_eq!(o.next_to_send().unwrap().payload, vec![3]);
        o.on_written(1);
        o.on_written(2);
        assert_eq!(o.on_acked(2), Some(3));
        assert_eq!(o.on_acked(1), Some(2));
        assert!(o.is_empty());
        assert_eq!((o.acked(), o.bytes()), (3, 0));
    }

    #[test]
    fn full_outbox_drops_oldest_or_refuses_and_counts() {
        let mut o = Outbox::new(Limits::count(2), 8);
        assert_eq!(queued(o.push(m(1, true), 0)), (1, vec![]));
        queued(o.push(m(2, true), 0));
        assert_eq!(queued(o.push(m(3, true), 0)), (3, vec![1]));
        assert_eq!(o.dropped(), 1);
        assert_eq!(o.next_to_send().unwrap().payload, vec![2]);

        let mut o = Outbox::new(
            Limits {
                refuse_new: true,
                ..Limits::count(2)
            },
            8,
        );
        o.push(m(1, true), 0);
        o.push(m(2, true), 0);
        assert_eq!(o.push(m(3, true), 0), Pushed::Refused);
        assert_eq!((o.len(), o.dropped()), (2, 1));

        // Bytes: each message is 4 bytes ("t/N" + 1 payload byte).
        let mut o = Outbox::new(
            Limits {
                max_bytes: 8,
                ..Limits::count(100)
            },
            8,
        );
        o.push(m(1, true), 0);
        o.push(m(2, true), 0);
        assert_eq!(queued(o.push(m(3, true), 0)).1, vec![1]);
        assert_eq!(o.bytes(), 8);
    }

    #[test]
    fn old_messages_expire() {
        let mut o = Outbox::new(
            Limits {
                max_age_ms: 1000,
                ..Limits::count(10)
            },
            8,
        );
        o.push(m(1, true), 0);
        o.push(m(2, true), 900);
        assert_eq!(o.expire(1500), vec![1]);
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn restored_messages_go_first_and_ids_continue() {
        let mut o = Outbox::new(Limits::count(10), 8);
        o.restore(vec![Stored {
            id: 41,
            created_ms: 5,
            msg: m(9, true),
        }]);
        assert_eq!(queued(o.push(m(1, true), 6)).0, 42);
        assert_eq!(o.next_to_send().unwrap().payload, vec![9]);
    }

    #[test]
    fn qos0_and_untracked_keep_packet_order_aligned() {
        let mut o = Outbox::new(Limits::count(10), 10);
        o.push(m(1, false), 0);
        o.push(m(2, true), 0);
        o.note_untracked();
        assert_eq!(o.next_to_send().unwrap().payload, vec![1]);
        assert_eq!(o.next_to_send().unwrap().payload, vec![2]);
        o.on_written(5); // the untracked status
        o.on_written(0); // the QoS 0 message
        o.on_written(6); // message 2
        assert_eq!(o.on_acked(5), None);
        assert_eq!(o.len(), 1);
        assert_eq!(o.on_acked(6), Some(2));
        assert!(o.is_empty());
    }
}
