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
//!   A message refused or discarded changes nothing; one larger than the
//!   byte limit on its own is refused ([`Pushed::TooLarge`]), never made
//!   room for. `expire` drops messages older than the age limit (only the
//!   QoS 1 ones are losses).
//! - `next_to_send` hands out unsent messages in order, at most `window`
//!   outstanding at a time.
//! - The transport reports each publish it writes (`on_written`, in the
//!   order messages were handed over, with the packet id it chose) and each
//!   PUBACK (`on_acked`); a QoS 1 message leaves the outbox only then.
//! - `on_disconnect` makes every outstanding message unsent again: it will
//!   be sent again, in order, after the next connect (at-least-once; a
//!   subscriber de-duplicates by (device, camera, seq)).
//! - `on_refused` (an MQTT 5 PUBACK with a failure reason, e.g. not
//!   authorised): the message is not delivered. It stays, unsent, within
//!   the limits above, and nothing is handed out until the retry time: 1 s
//!   after the first refusal, doubling with each round of refusals up to
//!   60 s; a delivery makes the next wait 1 s again.

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
    /// A QoS 1 message larger than the byte limit on its own (a loss).
    TooLarge,
    /// A QoS 0 message found the outbox full of QoS 1 messages (or is
    /// larger than it): not queued.
    Discarded,
}

/// The wait before sending again after the first refusal, and the longest.
const FIRST_WAIT_MS: u64 = 1000;
const LONGEST_WAIT_MS: u64 = 60_000;

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

/// Whether `new` makes `old` pointless: both retained and not events, on
/// one topic, `old` not yet sent.
fn supersedes(new: &Message, old: &Entry) -> bool {
    new.retain
        && new.event.is_none()
        && !old.sent
        && old.msg.retain
        && old.msg.event.is_none()
        && old.msg.topic == new.topic
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
    /// After a refusal: nothing is handed out before this time (ms).
    retry_at: u64,
    /// The wait the next round of refusals sets.
    wait_ms: u64,
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
            retry_at: 0,
            wait_ms: FIRST_WAIT_MS,
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
        if extra > self.limits.max_bytes {
            if !msg.reliable {
                return Pushed::Discarded;
            }
            self.dropped += 1;
            return Pushed::TooLarge;
        }
        // Decided before anything changes: whether it fits once what goes
        // without a loss (the message it supersedes, QoS 0 ones) is gone.
        let (n, bytes) = self
            .queue
            .iter()
            .filter(|e| e.msg.reliable && !supersedes(&msg, e))
            .fold((0, 0), |(n, b), e| (n + 1, b + size(&e.msg)));
        let fits = n == 0 || (n < self.limits.max_events && bytes + extra <= self.limits.max_bytes);
        if !fits && !msg.reliable {
            return Pushed::Discarded;
        }
        if !fits && self.limits.refuse_new {
            self.dropped += 1;
            return Pushed::Refused;
        }
        let mut removed = vec![];
        // Only the newest retained message of a topic is worth sending.
        while let Some(pos) = self.queue.iter().position(|e| supersedes(&msg, e)) {
            removed.push(self.take(pos).id);
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

    /// Drops messages older than the age limit; returns the ids of the
    /// QoS 1 ones (the losses, and the store's records).
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
            if e.msg.reliable {
                self.dropped += 1;
                gone.push(e.id);
            }
        }
        gone
    }

    /// The next message to hand to the transport at `now_ms`, if the
    /// window allows and no refusal holds sending back.
    pub fn next_to_send(&mut self, now_ms: u64) -> Option<Message> {
        if now_ms < self.retry_at || self.handed.len() + self.inflight.len() >= self.window {
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
        self.wait_ms = FIRST_WAIT_MS;
        let id = self.inflight.remove(&pkid)?;
        let pos = self.queue.iter().position(|e| e.id == id)?;
        let e = self.queue.remove(pos).expect("position is valid");
        self.bytes -= size(&e.msg);
        self.acked += 1;
        Some(id)
    }

    /// The broker refused `pkid` at `now_ms`: its message stays, to be
    /// sent again after the wait (see the module doc). Returns it; `None`
    /// for a packet that is not the outbox's (e.g. the status).
    pub fn on_refused(&mut self, pkid: u16, now_ms: u64) -> Option<&Message> {
        if now_ms >= self.retry_at {
            // A new round: the answers to what was sent before are in.
            self.retry_at = now_ms + self.wait_ms;
            self.wait_ms = (self.wait_ms * 2).min(LONGEST_WAIT_MS);
        }
        let id = self.inflight.remove(&pkid)?;
        let e = self.queue.iter_mut().find(|e| e.id == id)?;
        e.sent = false;
        Some(&e.msg)
    }

    /// When sending resumes after a refusal (ms; in the past when it has).
    pub fn retry_at(&self) -> u64 {
        self.retry_at
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
        assert_eq!(o.next_to_send(0).unwrap().payload, vec![1]);
        assert_eq!(o.next_to_send(0).unwrap().payload, vec![2]);
        assert_eq!(o.next_to_send(0), None, "window of 2");
        o.on_written(7);
        o.on_written(8);
        assert_eq!(o.on_acked(7), Some(1));
        assert_eq!(o.len(), 2);
        assert_eq!(o.next_to_send(0).unwrap().payload, vec![3]);
        o.on_disconnect();
        // 2 was written but not acked, 3 handed but not written: both again, in order.
        assert_eq!(o.next_to_send(0).unwrap().payload, vec![2]);
        assert_eq!(o.next_to_send(0).unwrap().payload, vec![3]);
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
        assert_eq!(o.next_to_send(0).unwrap().payload, vec![2]);

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
        assert_eq!(o.next_to_send(0).unwrap().payload, vec![9]);
    }

    #[test]
    fn qos0_and_untracked_keep_packet_order_aligned() {
        let mut o = Outbox::new(Limits::count(10), 10);
        o.push(m(1, false), 0);
        o.push(m(2, true), 0);
        o.note_untracked();
        assert_eq!(o.next_to_send(0).unwrap().payload, vec![1]);
        assert_eq!(o.next_to_send(0).unwrap().payload, vec![2]);
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
            while let Some(m) = o.next_to_send(0) {
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
        assert_eq!(o.next_to_send(0).unwrap().payload, b"{\"seq\":1}");
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
        assert_eq!(o.next_to_send(0).unwrap().payload, vec![1]);
        // The client refused message 1: it goes again, and the next
        // written packet is message 2's.
        assert_eq!(o.unhand(false), None);
        assert_eq!(o.next_to_send(0).unwrap().payload, vec![1]);
        assert_eq!(o.next_to_send(0).unwrap().payload, vec![2]);
        assert_eq!(o.unhand(true), Some(2), "too large: dropped");
        o.on_written(3);
        assert_eq!(o.on_acked(3), Some(1));
        assert!(o.is_empty());
        assert_eq!(o.dropped(), 1);
    }

    /// A message larger than `max_bytes` on its own can never fit: it is
    /// refused (and counted), and no queued event makes room for it.
    #[test]
    fn a_message_larger_than_the_outbox_is_refused_not_room_made() {
        let mut o = Outbox::new(
            Limits {
                max_bytes: 100,
                ..Limits::count(100)
            },
            8,
        );
        for seq in 1..=5 {
            queued(o.push(event("c", seq), 0));
        }
        let mut big = event("c", 6);
        big.payload = vec![b' '; 200];
        assert_eq!(o.push(big, 0), Pushed::TooLarge);
        assert_eq!((o.len(), o.dropped()), (5, 1), "every event stays");
    }

    /// Only QoS 1 messages are losses; expired QoS 0 messages just go.
    #[test]
    fn expired_qos0_messages_are_not_counted_as_lost() {
        let mut o = Outbox::new(
            Limits {
                max_age_ms: 1000,
                ..Limits::count(10)
            },
            8,
        );
        o.push(frame("c", 1), 0);
        let (id, _) = queued(o.push(event("c", 1), 0));
        o.push(frame("c", 2), 0);
        assert_eq!(o.expire(1500), vec![id], "only the event's record");
        assert_eq!((o.len(), o.dropped()), (0, 1));
    }

    #[test]
    fn a_refused_push_changes_nothing() {
        // refuse_new, full by bytes: a bigger state does not fit even in
        // its predecessor's place; the predecessor stays.
        let mut o = Outbox::new(
            Limits {
                max_bytes: 40,
                refuse_new: true,
                ..Limits::count(100)
            },
            8,
        );
        o.push(event("c", 1), 0);
        o.push(state("c", 1), 0);
        let mut bigger = state("c", 2);
        bigger.payload = b"{\"seq\":2,\"tags\":[]}".to_vec();
        assert_eq!(o.push(bigger, 0), Pushed::Refused);
        assert_eq!(o.held().len(), 2);
        // A frame finds no room and takes none.
        let mut o = Outbox::new(Limits::count(2), 8);
        o.push(frame("c", 1), 0);
        o.push(event("c", 1), 0);
        assert_eq!(
            o.push(frame("c", 2), 0),
            Pushed::Queued {
                id: 3,
                dropped: vec![],
                removed: vec![1]
            }
        );
        o.push(event("c", 2), 0);
        assert_eq!(o.push(frame("c", 3), 0), Pushed::Discarded);
        assert_eq!(o.len(), 2);
    }

    /// A refused message is not delivered: it stays, unsent, and goes
    /// again after 1 s, 2 s, 4 s ... (60 s at most); a delivery resets the
    /// wait. What was refused meanwhile goes again first, in order.
    #[test]
    fn a_refusal_keeps_the_message_and_retries_with_backoff() {
        let mut o = Outbox::new(Limits::count(10), 8);
        for seq in 1..=3 {
            o.push(event("c", seq), 0);
        }
        let send = |o: &mut Outbox, now: u64| -> Vec<u64> {
            std::iter::from_fn(|| o.next_to_send(now))
                .map(|m| m.event.unwrap().1)
                .collect()
        };
        let mut pkid = 0;
        let mut write = |o: &mut Outbox, n: usize| -> Vec<u16> {
            (0..n)
                .map(|_| {
                    pkid += 1;
                    o.on_written(pkid);
                    pkid
                })
                .collect()
        };
        let mut now = 0;
        let mut waits = vec![];
        for _ in 0..8 {
            assert_eq!(send(&mut o, now), vec![1, 2, 3]);
            for p in write(&mut o, 3) {
                assert!(o.on_refused(p, now + 5).is_some());
            }
            assert_eq!((o.len(), o.acked(), o.dropped()), (3, 0, 0));
            let before = o.retry_at() - 1;
            assert_eq!(send(&mut o, before), Vec::<u64>::new(), "held back");
            waits.push(o.retry_at() - now - 5);
            now = o.retry_at();
        }
        assert_eq!(waits, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
        // The broker takes them again (the ACL was fixed).
        assert_eq!(send(&mut o, now), vec![1, 2, 3]);
        let p = write(&mut o, 3);
        assert_eq!(o.on_acked(p[0]), Some(1));
        assert!(o.on_refused(p[1], now + 5).is_some());
        assert_eq!(o.on_acked(p[2]), Some(3));
        assert_eq!(o.retry_at(), now + 5 + 1000, "a delivery resets the wait");
        assert_eq!(send(&mut o, now + 1005), vec![2]);
        // A refusal of a packet that is not the outbox's (the status).
        assert!(o.on_refused(999, now + 2000).is_none());
        assert_eq!(o.acked(), 2);
    }
}
