//! The outbox's rules: pure state, no sockets or files (like rumqttc's
//! `state.rs`), so they are unit-tested directly. The publisher mirrors
//! every change into the on-disk store.
//!
//! - `push` appends; past the limits (count, bytes) it makes room by
//!   dropping QoS 0 messages first (oldest first): a best-effort message
//!   never displaces a QoS 1 one, and a QoS 0 message finds no room when
//!   only QoS 1 messages are queued. Only then does it drop the oldest QoS 1
//!   message or refuse the new one, as configured, and it reports what it
//!   dropped. A retained message that is not an event (a camera's `state`)
//!   supersedes the unsent retained message on its topic: the broker keeps
//!   only the newest, so the older one is removed, not counted as a loss.
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
    /// Queued with this id. `dropped`: QoS 1 messages dropped to make room
    /// (losses); `removed`: QoS 0 messages dropped to make room and
    /// superseded retained messages (no loss to report, but the store
    /// must forget them too).
    Queued {
        id: u64,
        dropped: Vec<u64>,
        removed: Vec<u64>,
    },
    /// Full and configured to refuse new QoS 1 messages (a loss).
    Refused,
    /// A QoS 0 message found the outbox full of QoS 1 messages: not queued.
    Discarded,
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

    /// Removes the entry at `pos`, keeping the byte count.
    fn take(&mut self, pos: usize) -> Entry {
        let e = self.queue.remove(pos).expect("position is valid");
        self.bytes -= size(&e.msg);
        e
    }

    /// Queues a message created at `created_ms`.
    pub fn push(&mut self, msg: Message, created_ms: u64) -> Pushed {
        let extra = size(&msg);
        let mut removed = vec![];
        if msg.retain && msg.event.is_none() {
            // Only the newest retained message of a topic is worth sending.
            while let Some(pos) = self.queue.iter().position(|e| {
                !e.sent && e.msg.retain && e.msg.event.is_none() && e.msg.topic == msg.topic
            }) {
                removed.push(self.take(pos).id);
            }
        }
        // Best-effort messages make room first, oldest first.
        while self.full(extra) {
            match self.queue.iter().position(|e| !e.msg.reliable) {
                Some(pos) => removed.push(self.take(pos).id),
                None => break,
            }
        }
        let mut dropped = vec![];
        if self.full(extra) && !self.queue.is_empty() {
            if !msg.reliable {
                return Pushed::Discarded;
            }
            if self.limits.refuse_new {
                self.dropped += 1;
                return Pushed::Refused;
            }
            while self.full(extra) && !self.queue.is_empty() {
                let old = self.take(0);
                self.dropped += 1;
                dropped.push(old.id);
            }
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
        Pushed::Queued {
            id,
            dropped,
            removed,
        }
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

    /// The message `next_to_send` just returned did not reach the client
    /// (its request queue was full or belonged to a connection that is
    /// gone): it is not matched with the next written packet, and goes
    /// again later. With `drop` (it can never be sent: too large) it
    /// leaves the outbox instead; returns its id then, for the store.
    pub fn unhand(&mut self, drop: bool) -> Option<u64> {
        let id = self.handed.pop_back()??;
        let pos = self.queue.iter().position(|e| e.id == id)?;
        if drop {
            self.dropped += 1;
            return Some(self.take(pos).id);
        }
        self.queue[pos].sent = false;
        None
    }

    /// Every QoS 1 message held, oldest first, as the store keeps them.
    pub fn held(&self) -> Vec<Stored> {
        self.queue
            .iter()
            .filter(|e| e.msg.reliable)
            .map(|e| Stored {
                id: e.id,
                created_ms: e.created_ms,
                msg: e.msg.clone(),
            })
            .collect()
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
            Pushed::Queued { id, dropped, .. } => (id, dropped),
            other => panic!("not queued: {other:?}"),
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

    fn event(cam: &str, seq: u64) -> Message {
        Message {
            topic: format!("d/{cam}/styles"),
            payload: format!("{{\"seq\":{seq}}}").into_bytes(),
            reliable: true,
            retain: false,
            event: Some((cam.to_string(), seq)),
        }
    }

    fn state(cam: &str, seq: u64) -> Message {
        Message {
            topic: format!("d/{cam}/state"),
            payload: format!("{{\"seq\":{seq}}}").into_bytes(),
            reliable: true,
            retain: true,
            event: None,
        }
    }

    fn frame(cam: &str, n: u64) -> Message {
        Message {
            topic: format!("d/{cam}/frames"),
            payload: format!("{{\"frame\":{n}}}").into_bytes(),
            reliable: false,
            retain: false,
            event: None,
        }
    }

    /// The review's outage, as an operator ran it: one camera at 10 fps,
    /// `max_events = 300`, 40 s without a broker, 284 tag events, each with
    /// its retained state, and (`publish_frames`) every frame at QoS 0.
    /// Every event must still be there when the broker comes back.
    #[test]
    fn an_outage_keeps_every_event_when_frames_and_states_pile_up() {
        for publish_frames in [false, true] {
            let mut o = Outbox::new(Limits::count(300), 1000);
            let mut seq = 0;
            for n in 0..400u64 {
                if publish_frames {
                    o.push(frame("cam", n), n);
                }
                if n * 284 / 400 != (n + 1) * 284 / 400 {
                    seq += 1;
                    o.push(event("cam", seq), n);
                    o.push(state("cam", seq), n);
                }
            }
            assert_eq!(seq, 284);
            assert_eq!(o.dropped(), 0, "publish_frames = {publish_frames}");
            let mut events = vec![];
            let mut states = vec![];
            while let Some(m) = o.next_to_send() {
                match &m.event {
                    Some((_, s)) => events.push(*s),
                    None if m.retain => states.push(m.payload.clone()),
                    None => {}
                }
            }
            assert_eq!(events, (1..=284).collect::<Vec<_>>());
            assert_eq!(
                states,
                vec![b"{\"seq\":284}".to_vec()],
                "only the newest state"
            );
        }
    }

    #[test]
    fn qos0_never_displaces_qos1() {
        let mut o = Outbox::new(Limits::count(3), 8);
        o.push(frame("c", 1), 0);
        o.push(event("c", 1), 0);
        o.push(event("c", 2), 0);
        // Full: the new event takes the frame's place.
        match o.push(event("c", 3), 0) {
            Pushed::Queued {
                dropped, removed, ..
            } => {
                assert_eq!((dropped, removed), (vec![], vec![1]));
            }
            other => panic!("{other:?}"),
        }
        // Full of events: a frame finds no room, and no event goes.
        assert_eq!(o.push(frame("c", 2), 0), Pushed::Discarded);
        assert_eq!((o.len(), o.dropped()), (3, 0));
        // An event still displaces the oldest event (drop-oldest).
        assert_eq!(queued(o.push(event("c", 4), 0)).1, vec![2]);
    }

    #[test]
    fn a_state_supersedes_only_the_unsent_state_of_its_topic() {
        let mut o = Outbox::new(Limits::count(10), 8);
        o.push(state("a", 1), 0);
        assert_eq!(o.next_to_send().unwrap().payload, b"{\"seq\":1}");
        // The first is in flight: it stays (its PUBACK will come).
        o.push(state("a", 2), 0);
        o.push(state("b", 1), 0);
        match o.push(state("a", 3), 0) {
            Pushed::Queued { removed, .. } => assert_eq!(removed, vec![2]),
            other => panic!("{other:?}"),
        }
        assert_eq!((o.len(), o.dropped()), (3, 0));
        // An event on a state's topic never supersedes anything.
        let mut e = event("a", 9);
        e.retain = true;
        assert!(matches!(o.push(e, 0), Pushed::Queued { ref removed, .. } if removed.is_empty()));
    }

    #[test]
    fn a_failed_hand_off_is_not_matched_with_the_next_write() {
        let mut o = Outbox::new(Limits::count(10), 8);
        o.push(m(1, true), 0);
        o.push(m(2, true), 0);
        assert_eq!(o.next_to_send().unwrap().payload, vec![1]);
        // The client refused message 1: it goes again, and the next
        // written packet is message 2's.
        assert_eq!(o.unhand(false), None);
        assert_eq!(o.next_to_send().unwrap().payload, vec![1]);
        assert_eq!(o.next_to_send().unwrap().payload, vec![2]);
        assert_eq!(o.unhand(true), Some(2), "too large: dropped");
        o.on_written(3);
        assert_eq!(o.on_acked(3), Some(1));
        assert!(o.is_empty());
        assert_eq!(o.dropped(), 1);
    }
}
