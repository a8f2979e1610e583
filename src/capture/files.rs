//! A camera made of image files: a folder (sorted by name) or a glob of
//! JPEG/PNG files, played once or in a loop at a target fps. A file that
//! cannot be read or decoded is logged once, skipped and counted; the
//! camera goes on with the next file.

use super::{CaptureError, Frame, FrameSource, Pacer, PixelFormat, SourceState, StopToken};
use crate::config::FilesCamera;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    failed_in_a_row: usize,
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
        })
    }

    /// Files skipped so far because they could not be decoded.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Moves to the next file and decodes it; `Ok(None)` once the files are
    /// used up. A file that does not decode is a `Skipped` error (logged the
    /// first time); once every file in a row has failed it is `Fatal`.
    fn advance(&mut self) -> Result<Option<()>, CaptureError> {
        if self.pos >= self.files.len() {
            if !self.looping {
                return Ok(None);
            }
            self.pos = 0;
        }
        let path = self.files[self.pos].clone();
        self.pos += 1;
        match decode(&path) {
            Ok((w, h, f, data)) => {
                self.current = Some((w, h, f, Arc::new(data)));
                self.repeat_left = self.repeat;
                self.failed_in_a_row = 0;
                Ok(Some(()))
            }
            Err(reason) => {
                self.skipped += 1;
                self.failed_in_a_row += 1;
                if self.failed_in_a_row >= self.files.len() {
                    return Err(CaptureError::Fatal(format!(
                        "camera {:?}: none of its {} images can be decoded",
                        self.camera,
                        self.files.len()
                    )));
                }
                if self.bad.insert(path.clone()) {
                    log::warn!(
                        "camera {}: skipping {}: {reason} (logged once per file; counted in metrics)",
                        self.camera,
                        path.display()
                    );
                }
                Err(CaptureError::Skipped {
                    what: path.display().to_string(),
                    reason,
                })
            }
        }
    }
}

impl FrameSource for FilesSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
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
        if !self.looping && self.pos >= self.files.len() && self.repeat_left == 0 {
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
    decode(path).map(|d| still(Arc::from(camera), 0, d))
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

fn decode(path: &Path) -> Result<Decoded, String> {
    let img = image::ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| e.to_string())?;
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
