//! The in-memory outbox: pure state, no sockets (like rumqttc's
//! `state.rs`), so its rules are unit-tested directly.
//!
//! - `push` appends; past `capacity` the oldest message is dropped and
//!   counted.
//! - `next_to_send` hands out unsent messages in order, at most `window`
//!   outstanding at a time.
//! - The transport reports each publish it writes (`on_written`, in the
//!   order messages were handed over, with the packet id it chose) and each
//!   PUBACK (`on_acked`); a QoS 1 message leaves the outbox only then.
//! - `on_disconnect` makes every outstanding message unsent again: it will
//!   be sent again, in order, after the next connect (at-least-once; a
//!   subscriber de-duplicates by (device, camera, seq)).

use super::Message;
use std::collections::{HashMap, VecDeque};

#[derive(Debug)]
struct Entry {
    id: u64,
    msg: Message,
    sent: bool,
}

#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Entry>,
    capacity: usize,
    window: usize,
    next_id: u64,
    /// Handed to the transport, not yet written: ids (None for untracked QoS 0).
    handed: VecDeque<Option<u64>>,
    /// Written, waiting for PUBACK: packet id → message id.
    inflight: HashMap<u16, u64>,
    dropped: u64,
    acked: u64,
}

impl Outbox {
    pub fn new(capacity: usize, window: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            window: window.max(1),
            next_id: 0,
            handed: VecDeque::new(),
            inflight: HashMap::new(),
            dropped: 0,
            acked: 0,
        }
    }

    /// Queues a message; returns true if an older one had to be dropped.
    pub fn push(&mut self, msg: Message) -> bool {
        self.next_id += 1;
        self.queue.push_back(Entry {
            id: self.next_id,
            msg,
            sent: false,
        });
        if self.queue.len() > self.capacity {
            self.queue.pop_front();
            self.dropped += 1;
            return true;
        }
        false
    }

    /// The next message to hand to the transport, if the window allows.
    pub fn next_to_send(&mut self) -> Option<Message> {
        if self.handed.len() + self.inflight.len() >= self.window {
            return None;
        }
        let entry = self.queue.iter_mut().find(|e| !e.sent)?;
        let msg = entry.msg.clone();
        if msg.reliable {
            entry.sent = true;
            self.handed.push_back(Some(entry.id));
        } else {
            // QoS 0: handed over once, never retried.
            let id = entry.id;
            self.handed.push_back(None);
            self.queue.retain(|e| e.id != id);
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

    /// The broker acknowledged `pkid`: the message is delivered.
    pub fn on_acked(&mut self, pkid: u16) {
        if let Some(id) = self.inflight.remove(&pkid) {
            if let Some(pos) = self.queue.iter().position(|e| e.id == id) {
                self.queue.remove(pos);
                self.acked += 1;
            }
        }
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
        }
    }

    #[test]
    fn stays_until_acked_and_resends_in_order_after_disconnect() {
        let mut o = Outbox::new(10, 2);
        for i in 1..=3 {
            o.push(m(i, true));
        }
        assert_eq!(o.next_to_send().unwrap().payload, vec![1]);
        assert_eq!(o.next_to_send().unwrap().payload, vec![2]);
        assert_eq!(o.next_to_send(), None, "window of 2");
        o.on_written(7);
        o.on_written(8);
        o.on_acked(7);
        assert_eq!(o.len(), 2);
        assert_eq!(o.next_to_send().unwrap().payload, vec![3]);
        o.on_disconnect();
        // 2 was written but not acked, 3 handed but not written: both again, in order.
        assert_eq!(o.next_to_send().unwrap().payload, vec![2]);
        assert_eq!(o.next_to_send().unwrap().payload, vec![3]);
        o.on_written(1);
        o.on_written(2);
        o.on_acked(2);
        o.on_acked(1);
        assert!(o.is_empty());
        assert_eq!(o.acked(), 3);
    }

    #[test]
    fn full_outbox_drops_oldest_and_counts() {
        let mut o = Outbox::new(2, 8);
        assert!(!o.push(m(1, true)));
        assert!(!o.push(m(2, true)));
        assert!(o.push(m(3, true)));
        assert_eq!(o.dropped(), 1);
        assert_eq!(o.next_to_send().unwrap().payload, vec![2]);
    }

    #[test]
    fn qos0_and_untracked_keep_packet_order_aligned() {
        let mut o = Outbox::new(10, 10);
        o.push(m(1, false));
        o.push(m(2, true));
        o.note_untracked();
        assert_eq!(o.next_to_send().unwrap().payload, vec![1]);
        assert_eq!(o.next_to_send().unwrap().payload, vec![2]);
        o.on_written(5); // the untracked status
        o.on_written(0); // the QoS 0 message
        o.on_written(6); // message 2
        o.on_acked(5);
        assert_eq!(o.len(), 1);
        o.on_acked(6);
        assert!(o.is_empty());
    }
}
