//! Per-camera frame queues with drop-oldest, and the batcher's view of
//! them. Real time wins over completeness: when a camera's queue is full,
//! its oldest frame is dropped (and counted) so the newest can wait.

use crate::capture::Frame;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The longest `take_batch` waits for a first frame before it returns an
/// empty batch.
pub const IDLE: Duration = Duration::from_millis(250);

/// A frame waiting for inference.
#[derive(Debug)]
pub struct Prepared {
    pub camera: usize,
    pub seq: u64,
    pub captured_at: SystemTime,
    pub input: Input,
    /// What the input is a view of: the frame, a region, a person.
    pub subject: super::subjects::Subject,
    /// The change gate found it like this keyframe (its camera's frame
    /// `seq`): it may reuse that frame's probabilities (`input` is then the
    /// raw frame, for the case it must be inferred after all).
    pub reuse: Option<u64>,
}

/// What a queued frame carries to the batch.
#[derive(Debug)]
pub enum Input {
    /// Preprocessed on the camera thread: copied into a slot at batch time.
    Tensor(Vec<f32>),
    /// The raw frame: preprocessed at batch time, straight into its slot.
    Frame(Frame),
    /// A box of a (masked, RGB) frame shared by the frame's other crops:
    /// cut and preprocessed at batch time, the crops of one frame together
    /// ([`crate::preprocess::Preprocessor::prepare_crops`]: one launch on
    /// the GPU).
    Crop {
        frame: std::sync::Arc<Frame>,
        rect: crate::preprocess::kernels::Rect,
    },
}

struct State {
    queues: Vec<VecDeque<Prepared>>,
    live: usize,
    stop: bool,
}

pub struct FrameQueues {
    depth: usize,
    state: Mutex<State>,
    ready: Condvar,
}

impl FrameQueues {
    pub fn new(cameras: usize, depth: usize) -> Self {
        Self {
            depth: depth.max(1),
            state: Mutex::new(State {
                queues: (0..cameras).map(|_| VecDeque::new()).collect(),
                live: cameras,
                stop: false,
            }),
            ready: Condvar::new(),
        }
    }

    /// Queues a frame; returns true when the camera's oldest frame was dropped for it.
    pub fn push(&self, item: Prepared) -> bool {
        let mut s = self.state.lock().expect("queue lock");
        let q = &mut s.queues[item.camera];
        q.push_back(item);
        // The depth counts frames: a regions or people frame queues one
        // item per subject, all with the frame's `seq`, dropped together.
        let frames = 1 + q
            .iter()
            .zip(q.iter().skip(1))
            .filter(|(a, b)| a.seq != b.seq)
            .count();
        let dropped = frames > self.depth;
        if dropped {
            let oldest = q[0].seq;
            while q.front().is_some_and(|f| f.seq == oldest) {
                q.pop_front();
            }
        }
        drop(s);
        self.ready.notify_one();
        dropped
    }

    /// Frames waiting, per camera (in camera order).
    pub fn depths(&self) -> Vec<usize> {
        let s = self.state.lock().expect("queue lock");
        s.queues.iter().map(VecDeque::len).collect()
    }

    /// A camera will send no more frames.
    pub fn camera_ended(&self) {
        self.state.lock().expect("queue lock").live -= 1;
        self.ready.notify_all();
    }

    /// Stop: the batcher drains what is queued, then ends.
    pub fn stop(&self) {
        self.state.lock().expect("queue lock").stop = true;
        self.ready.notify_all();
    }

    /// Waits until every camera has ended (after [`stop`](Self::stop): the
    /// cameras' threads send their last track notices before they end), or
    /// `timeout` passed; true when they all ended.
    pub fn wait_cameras_ended(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        let mut s = self.state.lock().expect("queue lock");
        while s.live > 0 {
            let now = Instant::now();
            if now >= until {
                return false;
            }
            s = self
                .ready
                .wait_timeout(s, until - now)
                .expect("queue lock")
                .0;
        }
        true
    }

    pub fn stopped(&self) -> bool {
        self.state.lock().expect("queue lock").stop
    }

    /// Waits for at least one frame, then up to `max_wait` for up to `max`
    /// frames, oldest first across cameras. An empty batch after [`IDLE`]
    /// without a frame (so that the caller's loop shows it is alive). `None`
    /// when every camera has ended (or stop was requested) and nothing is
    /// left.
    pub fn take_batch(&self, max: usize, max_wait: Duration) -> Option<Vec<Prepared>> {
        let count = |s: &State| s.queues.iter().map(VecDeque::len).sum::<usize>();
        let mut s = self.state.lock().expect("queue lock");
        let idle_until = Instant::now() + IDLE;
        while count(&s) == 0 {
            if s.live == 0 || s.stop {
                return None;
            }
            let now = Instant::now();
            if now >= idle_until {
                return Some(vec![]);
            }
            s = self
                .ready
                .wait_timeout(s, idle_until - now)
                .expect("queue lock")
                .0;
        }
        let deadline = Instant::now() + max_wait;
        while count(&s) < max && s.live > 0 && !s.stop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = self
                .ready
                .wait_timeout(s, deadline - now)
                .expect("queue lock")
                .0;
        }
        let mut batch = Vec::with_capacity(max);
        while batch.len() < max {
            let oldest = (0..s.queues.len())
                .filter(|&i| !s.queues[i].is_empty())
                .min_by_key(|&i| s.queues[i][0].captured_at);
            match oldest {
                Some(i) => batch.push(s.queues[i].pop_front().expect("non-empty")),
                None => break,
            }
        }
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(camera: usize, seq: u64, t: u64) -> Prepared {
        Prepared {
            camera,
            seq,
            captured_at: SystemTime::UNIX_EPOCH + Duration::from_millis(t),
            input: Input::Tensor(vec![]),
            subject: crate::daemon::subjects::Subject::Frame,
            reuse: None,
        }
    }

    #[test]
    fn waits_for_the_cameras_to_end_or_gives_up() {
        let q = std::sync::Arc::new(FrameQueues::new(2, 2));
        q.stop();
        assert!(!q.wait_cameras_ended(Duration::from_millis(20)));
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            q2.camera_ended();
            q2.camera_ended();
        });
        assert!(q.wait_cameras_ended(Duration::from_secs(10)));
        t.join().unwrap();
    }

    #[test]
    fn drops_oldest_per_camera_and_batches_oldest_first() {
        let q = FrameQueues::new(2, 2);
        assert!(!q.push(p(0, 0, 10)));
        assert!(!q.push(p(0, 1, 20)));
        assert!(
            q.push(p(0, 2, 30)),
            "third frame of camera 0 drops its oldest"
        );
        assert!(!q.push(p(1, 0, 15)));
        let b = q.take_batch(8, Duration::ZERO).unwrap();
        let order: Vec<(usize, u64)> = b.iter().map(|f| (f.camera, f.seq)).collect();
        assert_eq!(order, vec![(1, 0), (0, 1), (0, 2)]);
        q.camera_ended();
        q.camera_ended();
        assert!(q.take_batch(8, Duration::ZERO).is_none());
    }
}
