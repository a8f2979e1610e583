//! A camera made of image files: a folder (sorted by name) or a glob of
//! JPEG/PNG files, played once or in a loop at a target fps.
//!
//! What goes wrong with one file decides what the camera does:
//! - a file that reads but does not decode is skipped (logged once per
//!   file, counted); once every file in a row failed to decode the camera
//!   fails (`Fatal`: nothing to play until somebody replaces the files);
//! - a file that cannot be read (gone, a folder, not a regular file) is
//!   skipped the same way, but never fails the camera: once every file in
//!   a row could not be read, the camera is `reconnecting` and retries;
//! - a read that fails for want of a resource — open files (EMFILE,
//!   ENFILE), memory, or interrupted (EINTR, EAGAIN) — retries the same
//!   file: the camera is `reconnecting`.
//!
//! While reconnecting it retries with backoff (0.1 s doubling to 5 s), each
//! failure counted (`connect_failures`); the first failure is a warning, a
//! later one with another reason info, the same again debug, and the
//! recovery says how long it took.

use super::{CaptureError, Frame, FrameSource, Pacer, PixelFormat, SourceState, StopToken};
use crate::config::FilesCamera;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct FilesSource {
    camera: Arc<str>,
    files: Vec<PathBuf>,
    looping: bool,
    repeat: u32,
    pos: usize,
    repeat_left: u32,
    current: Option<(u32, u32, PixelFormat, Arc<Vec<u8>>)>,
    seq: u64,
    pacer: Pacer,
    bad: HashSet<PathBuf>,
    skipped: u64,
    /// Files in a row that could not be used (read or decoded).
    failed_in_a_row: usize,
    /// Files in a row that were read but did not decode.
    undecodable_in_a_row: usize,
    /// Reading has been failing since; `None` while images are read.
    outage: Option<Outage>,
}

/// A run of read failures that makes the camera retry.
#[derive(Debug)]
struct Outage {
    since: Instant,
    failures: u32,
    /// The last failure's reason (the OS error), for the log's rate limit.
    last: String,
    retry_at: Instant,
}

/// First retry after this; doubling up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Why an image could not be used.
#[derive(Debug)]
enum Unusable {
    /// Reading it failed: the file system or the process, not the picture.
    Io(std::io::Error),
    /// It was read but is not a JPEG/PNG that decodes.
    Format(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Io(e) => write!(f, "{e}"),
            Unusable::Format(reason) => f.write_str(reason),
        }
    }
}

/// A failure of the process or the system rather than of the file: the
/// same file is tried again.
fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE | libc::ENFILE | libc::EINTR | libc::EAGAIN | libc::ENOMEM | libc::ENOBUFS
        )
    ) || matches!(
        e.kind(),
        ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::OutOfMemory
    )
}

const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Lists the images a `path` names: a folder's JPEG/PNG files sorted by name,
/// or the matches of a glob.
pub fn list_images(path: &str) -> Result<Vec<PathBuf>, CaptureError> {
    let p = Path::new(path);
    let mut files: Vec<PathBuf> = if p.is_dir() {
        std::fs::read_dir(p)
            .map_err(|e| CaptureError::Fatal(format!("cannot read folder {path}: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| {
                f.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
            })
            .collect()
    } else {
        glob::glob(path)
            .map_err(|e| CaptureError::Fatal(format!("bad glob {path:?}: {e}")))?
            .filter_map(Result::ok)
            .filter(|f| f.is_file())
            .collect()
    };
    files.sort();
    if files.is_empty() {
        return Err(CaptureError::Fatal(format!(
            "no JPEG/PNG images at {path:?}: point the camera's `path` at a folder of images or a glob like \"photos/*.jpg\""
        )));
    }
    Ok(files)
}

impl FilesSource {
    pub fn open(name: &str, fps: f64, cfg: &FilesCamera) -> Result<Self, CaptureError> {
        Ok(Self {
            camera: name.into(),
            files: list_images(&cfg.path)?,
            looping: cfg.looping,
            repeat: cfg.repeat.max(1),
            pos: 0,
            repeat_left: 0,
            current: None,
            seq: 0,
            pacer: Pacer::new(fps),
            bad: HashSet::new(),
            skipped: 0,
            failed_in_a_row: 0,
            undecodable_in_a_row: 0,
            outage: None,
        })
    }

    /// Files skipped so far because they could not be read or decoded.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Moves to the next file and decodes it; `Ok(None)` once the files are
    /// used up. See the module doc for what a failure does.
    fn advance(&mut self) -> Result<Option<()>, CaptureError> {
        if self.pos >= self.files.len() {
            if !self.looping {
                return Ok(None);
            }
            self.pos = 0;
        }
        let path = self.files[self.pos].clone();
        self.pos += 1;
        let n = self.files.len();
        match decode(&path) {
            Ok((w, h, f, data)) => {
                self.current = Some((w, h, f, Arc::new(data)));
                self.repeat_left = self.repeat;
                self.failed_in_a_row = 0;
                self.undecodable_in_a_row = 0;
                if let Some(o) = self.outage.take() {
                    log::info!(
                        "camera {}: reading images again after {} ({} failed attempts)",
                        self.camera,
                        humantime::format_duration(Duration::from_millis(
                            o.since.elapsed().as_millis() as u64
                        )),
                        o.failures
                    );
                }
                Ok(Some(()))
            }
            Err(Unusable::Io(e)) if transient(&e) => {
                self.pos -= 1;
                let reason = e.to_string();
                Err(self.retry(format!("cannot open {}: {reason}", path.display()), reason))
            }
            Err(unusable) => {
                self.skipped += 1;
                self.failed_in_a_row += 1;
                match unusable {
                    Unusable::Format(_) => self.undecodable_in_a_row += 1,
                    Unusable::Io(_) => self.undecodable_in_a_row = 0,
                }
                if self.undecodable_in_a_row >= n {
                    return Err(CaptureError::Fatal(format!(
                        "camera {:?}: none of its {n} images can be decoded",
                        self.camera
                    )));
                }
                if self.failed_in_a_row >= n {
                    let what = format!(
                        "none of its {n} images can be read (the last, {}: {unusable})",
                        path.display()
                    );
                    return Err(self.retry(what, unusable.to_string()));
                }
                if self.bad.insert(path.clone()) {
                    log::warn!(
                        "camera {}: skipping {}: {unusable} (logged once per file; counted in metrics)",
                        self.camera,
                        path.display()
                    );
                }
                Err(CaptureError::Skipped {
                    what: path.display().to_string(),
                    reason: unusable.to_string(),
                })
            }
        }
    }

    /// Reading failed for `reason` (`kind`: the error without the file, for
    /// the log's rate limit): the camera reconnects, retrying with backoff.
    fn retry(&mut self, reason: String, kind: String) -> CaptureError {
        let now = Instant::now();
        let o = self.outage.get_or_insert_with(|| Outage {
            since: now,
            failures: 0,
            last: String::new(),
            retry_at: now,
        });
        o.failures += 1;
        let wait = RETRY_FIRST
            .saturating_mul(1 << (o.failures - 1).min(6))
            .min(RETRY_MAX);
        o.retry_at = now + wait;
        let msg = format!(
            "camera {}: {reason}; retrying in {} (attempt {})",
            self.camera,
            humantime::format_duration(wait),
            o.failures
        );
        if o.failures == 1 {
            log::warn!("{msg}");
        } else if o.last != kind {
            log::info!("{msg}");
        } else {
            log::debug!("{msg}");
        }
        o.last = kind;
        CaptureError::Interrupted {
            reason: msg,
            lost_stream: false,
        }
    }
}

impl FrameSource for FilesSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if let Some(o) = &self.outage {
            if !self.pacer.sleep_until(o.retry_at) {
                return Ok(None);
            }
        }
        if self.repeat_left == 0 && self.advance()?.is_none() {
            return Ok(None);
        }
        self.repeat_left -= 1;
        if !self.pacer.wait() {
            return Ok(None);
        }
        let (width, height, format, data) = self.current.clone().expect("advance sets current");
        let decoded = (width, height, format, Arc::unwrap_or_clone(data));
        let frame = still(self.camera.clone(), self.seq, decoded);
        self.seq += 1;
        Ok(Some(frame))
    }

    fn stopper(&self) -> StopToken {
        self.pacer.stop.clone()
    }

    fn state(&self) -> SourceState {
        if let Some(o) = &self.outage {
            SourceState::Reconnecting {
                attempt: o.failures,
            }
        } else if !self.looping && self.pos >= self.files.len() && self.repeat_left == 0 {
            SourceState::Ended
        } else {
            SourceState::Streaming
        }
    }
}

/// Real photos for calibration and checks: the repository's demo photos
/// and, where installed, scikit-image's colour sample photos (Debian's
/// python3-skimage). Empty where neither is (an installed binary).
pub fn sample_photos() -> Vec<PathBuf> {
    let skimage = Path::new("/usr/lib/python3/dist-packages/skimage/data");
    let mut files =
        list_images(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/photos")).unwrap_or_default();
    files.extend(
        [
            "astronaut.png",
            "coffee.png",
            "chelsea.png",
            "rocket.jpg",
            "motorcycle_left.png",
            "hubble_deep_field.jpg",
            "retina.jpg",
            "ihc.png",
        ]
        .iter()
        .map(|f| skimage.join(f))
        .filter(|f| f.is_file()),
    );
    files
}

/// One image file as a frame (sequence 0): what the files camera plays,
/// also used to read training and test images.
pub fn image_frame(path: &Path, camera: &str) -> Result<Frame, String> {
    decode(path)
        .map(|d| still(Arc::from(camera), 0, d))
        .map_err(|e| e.to_string())
}

/// A decoded image as a frame captured now.
fn still(camera: Arc<str>, seq: u64, (width, height, format, data): Decoded) -> Frame {
    Frame {
        seq,
        ..Frame::still(camera, format, width, height, data)
    }
}

/// Width, height, pixel format and packed pixels of a decoded image.
type Decoded = (u32, u32, PixelFormat, Vec<u8>);

fn decode(path: &Path) -> Result<Decoded, Unusable> {
    // A FIFO or a device would block the camera's thread on open.
    let meta = std::fs::metadata(path).map_err(Unusable::Io)?;
    if !meta.is_file() {
        return Err(Unusable::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let img = image::ImageReader::open(path)
        .map_err(Unusable::Io)?
        .with_guessed_format()
        .map_err(Unusable::Io)?
        .decode()
        .map_err(|e| match e {
            // The OS failed a read; a short or malformed file is a format
            // problem (UnexpectedEof, InvalidData).
            image::ImageError::IoError(e) if e.raw_os_error().is_some() => Unusable::Io(e),
            other => Unusable::Format(other.to_string()),
        })?;
    Ok(match img {
        image::DynamicImage::ImageLuma8(g) => {
            (g.width(), g.height(), PixelFormat::Gray8, g.into_raw())
        }
        other => {
            let rgb = other.into_rgb8();
            (rgb.width(), rgb.height(), PixelFormat::Rgb8, rgb.into_raw())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, rgb: [u8; 3]) {
        image::RgbImage::from_pixel(4, 3, image::Rgb(rgb))
            .save(path)
            .unwrap();
    }

    fn looping(dir: &std::path::Path) -> FilesCamera {
        FilesCamera {
            path: dir.to_str().unwrap().into(),
            looping: true,
            repeat: 1,
        }
    }

    #[test]
    fn plays_once_in_name_order_and_skips_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("b.png"), [0, 255, 0]);
        write_png(&dir.path().join("a.png"), [255, 0, 0]);
        std::fs::write(dir.path().join("c.jpg"), b"not a jpeg").unwrap();
        write_png(&dir.path().join("d.png"), [0, 0, 255]);
        let cfg = FilesCamera {
            path: dir.path().to_str().unwrap().into(),
            looping: false,
            repeat: 2,
        };
        let mut src = FilesSource::open("cam", 0.0, &cfg).unwrap();
        let mut firsts = vec![];
        let mut skipped = 0;
        loop {
            match src.next_frame() {
                Ok(Some(f)) => {
                    assert_eq!((f.width, f.height, f.format), (4, 3, PixelFormat::Rgb8));
                    firsts.push((f.seq, f.data[0], f.data[1], f.data[2]));
                }
                Ok(None) => break,
                Err(CaptureError::Skipped { what, .. }) => {
                    assert!(what.ends_with("c.jpg"));
                    skipped += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(skipped, 1);
        assert_eq!(
            firsts,
            vec![
                (0, 255, 0, 0),
                (1, 255, 0, 0),
                (2, 0, 255, 0),
                (3, 0, 255, 0),
                (4, 0, 0, 255),
                (5, 0, 0, 255)
            ]
        );
        assert_eq!(src.skipped(), 1);
        assert_eq!(src.state(), SourceState::Ended);
    }

    #[test]
    fn loops_and_reports_when_nothing_decodes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.png"), b"garbage").unwrap();
        let cfg = looping(dir.path());
        let mut src = FilesSource::open("cam", 5.0, &cfg).unwrap();
        assert!(matches!(src.next_frame(), Err(CaptureError::Fatal(_))));
        std::fs::write(dir.path().join("y.png"), b"garbage too").unwrap();
        let mut src = FilesSource::open("cam", 5.0, &cfg).unwrap();
        assert!(matches!(
            src.next_frame(),
            Err(CaptureError::Skipped { .. })
        ));
        assert!(matches!(src.next_frame(), Err(CaptureError::Fatal(_))));
    }

    /// Files that cannot be read (here: replaced by folders) never end a
    /// looping camera: it skips them, and once none can be read it is
    /// reconnecting, retrying with backoff, until they are back.
    #[test]
    fn unreadable_files_are_retried_never_the_end_of_the_camera() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
        write_png(&a, [255, 0, 0]);
        write_png(&b, [0, 255, 0]);
        let mut src = FilesSource::open("cam", 0.0, &looping(dir.path())).unwrap();
        let unreadable = |p: &Path| {
            std::fs::remove_file(p).unwrap();
            std::fs::create_dir(p).unwrap();
        };
        unreadable(&b);
        assert!(src.next_frame().unwrap().is_some(), "a.png");
        assert!(matches!(
            src.next_frame(),
            Err(CaptureError::Skipped { .. })
        ));
        assert!(src.next_frame().unwrap().is_some(), "a.png again");
        unreadable(&a);
        let t0 = Instant::now();
        let mut retries = 0;
        for _ in 0..6 {
            match src.next_frame() {
                Err(CaptureError::Interrupted {
                    reason,
                    lost_stream,
                }) => {
                    assert!(!lost_stream);
                    assert!(reason.contains("can be read"), "{reason}");
                    retries += 1;
                }
                Err(CaptureError::Skipped { .. }) => {}
                other => panic!("expected a retry, got {other:?}"),
            }
        }
        assert!(retries >= 4, "{retries}");
        assert!(matches!(src.state(), SourceState::Reconnecting { .. }));
        // Backoff: 0.1 + 0.2 + 0.4 s between the first four retries.
        assert!(
            t0.elapsed() >= Duration::from_millis(600),
            "{:?}",
            t0.elapsed()
        );
        std::fs::remove_dir(&a).unwrap();
        write_png(&a, [255, 0, 0]);
        let back = (0..3).find_map(|_| src.next_frame().ok().flatten());
        assert!(back.is_some(), "a.png is read again");
        assert_eq!(src.state(), SourceState::Streaming);
    }

    #[test]
    fn running_out_of_descriptors_or_memory_is_transient() {
        let os = std::io::Error::from_raw_os_error;
        for e in [
            libc::EMFILE,
            libc::ENFILE,
            libc::EINTR,
            libc::EAGAIN,
            libc::ENOMEM,
        ] {
            assert!(transient(&os(e)), "{}", os(e));
        }
        for e in [libc::ENOENT, libc::EISDIR, libc::EACCES, libc::EIO] {
            assert!(!transient(&os(e)), "{}", os(e));
        }
    }

    #[test]
    fn empty_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = FilesSource::open("cam", 5.0, &looping(dir.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no JPEG/PNG images"), "{e}");
    }
}
