//! MJPEG frames decoded at a reduced scale picked from the model's input.
//!
//! A JPEG decoder can skip most of the inverse DCT by producing an image
//! 1/2, 1/4 or 1/8 the size (libjpeg-turbo also 3/8, 5/8, …): for a 224
//! input from 1080p, 1/4 (480×270) is enough, and the resize that follows
//! has 16× fewer pixels to read. The scale is the smallest whose image
//! still covers the resized size on both axes, so no detail the model
//! would see is lost to the reduction. A reduced decode is not
//! bit-identical to decoding at full size and then resizing: the scaled
//! IDCT averages each block like a box filter, where the reference's
//! triangle filter weighs neighbours. Bound, tested below on three real
//! photos at 1920×1080, 1280×720 and 640×480, 224 and 299, both resize
//! modes, both decoders (grey levels, before normalisation): mean
//! |difference| ≤ 1.5 and max ≤ 40 per channel. Measured: mean ≤ 0.97,
//! max 31 (a few pixels on sharp edges).
//!
//! Decoders: libjpeg-turbo's TurboJPEG API (`libturbojpeg.so.0`, Debian
//! `libturbojpeg0`), opened at run time where it is installed — nothing to
//! link at build time — else the pure-Rust `jpeg-decoder` (1/8, 1/4, 1/2).
//! Many UVC cameras send frames without Huffman tables (the standard
//! tables are implied, as in AVI MJPEG): libjpeg-turbo supplies them
//! itself; for `jpeg-decoder` an `AVI1` APP0 segment is inserted, which
//! makes it use the standard tables.

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr};
use std::sync::OnceLock;

/// Which decoder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// libjpeg-turbo where it is installed, else `jpeg-decoder`.
    Auto,
    TurboJpeg,
    Rust,
}

/// A decoded image: packed RGB8.
#[derive(Debug)]
pub struct Decoded {
    pub rgb: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// The scale it was decoded at, as `(numerator, 8)`.
    pub eighths: u32,
}

/// What the markers before the first scan say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub width: u32,
    pub height: u32,
    /// Whether the frame carries its own Huffman tables (DHT).
    pub has_huffman_tables: bool,
}

/// The largest MJPEG frame decoded: 8192 pixels a side and 8K DCI's
/// area. A frame's own SOF marker says how large it is; a corrupt or
/// hostile one claiming more (65328×6400 in a 1 KB frame, found by
/// fuzzing) would make the decoder allocate and work for seconds.
pub const MAX_SIDE: u32 = 8192;
pub const MAX_PIXELS: u64 = 8192 * 4352;

/// Why a frame of `info`'s size is not decoded, if it is not.
pub fn too_large(info: &Info) -> Option<String> {
    let (w, h) = (info.width, info.height);
    (w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || w as u64 * h as u64 > MAX_PIXELS).then(|| {
        format!("the MJPEG frame says it is {w}x{h} pixels; at most {MAX_SIDE} a side and {MAX_PIXELS} pixels are decoded")
    })
}

/// Reads the frame size and whether there is a DHT, without decoding.
pub fn info(data: &[u8]) -> Option<Info> {
    if data.len() < 4 || data[0] != 0xFF || data[1] != 0xD8 {
        return None;
    }
    let (mut at, mut size, mut dht) = (2, None, false);
    while at + 4 <= data.len() {
        if data[at] != 0xFF {
            return None;
        }
        let marker = data[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        let len = u16::from_be_bytes([data[at + 2], data[at + 3]]) as usize;
        match marker {
            0xC4 => dht = true,
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if marker != 0xC8 && marker != 0xCC => {
                if at + 9 > data.len() {
                    return None;
                }
                let h = u16::from_be_bytes([data[at + 5], data[at + 6]]) as u32;
                let w = u16::from_be_bytes([data[at + 7], data[at + 8]]) as u32;
                size = Some((w, h));
            }
            0xDA => break,
            _ => {}
        }
        at += 2 + len;
    }
    let (width, height) = size?;
    Some(Info {
        width,
        height,
        has_huffman_tables: dht,
    })
}

/// `ceil(len · n / 8)`: a dimension at scale n/8 (libjpeg's rounding).
fn scaled(len: u32, n: u32) -> u32 {
    (len * n).div_ceil(8)
}

/// The smallest of `scales` (in eighths) whose image covers `need` on both axes.
fn pick(full: (u32, u32), need: (u32, u32), scales: &[u32]) -> u32 {
    let mut scales = scales.to_vec();
    scales.sort_unstable();
    scales
        .into_iter()
        .find(|&n| scaled(full.0, n) >= need.0 && scaled(full.1, n) >= need.1)
        .unwrap_or(8)
}

/// Decodes `data` at the smallest scale that still covers `need`
/// (`(w, h)`, the resized size before cropping).
pub fn decode(data: &[u8], need: (u32, u32), decoder: Decoder) -> Result<Decoded, String> {
    let info = info(data).ok_or("not a JPEG frame (no SOI/SOF marker)")?;
    decode_known(data, info, need, decoder)
}

/// [`decode`] of a frame whose [`info`] the caller has already read.
pub fn decode_known(
    data: &[u8],
    info: Info,
    need: (u32, u32),
    decoder: Decoder,
) -> Result<Decoded, String> {
    if let Some(why) = too_large(&info) {
        return Err(why);
    }
    let turbo = match decoder {
        Decoder::Rust => None,
        Decoder::Auto => turbojpeg(),
        Decoder::TurboJpeg => Some(turbojpeg().ok_or_else(|| {
            format!(
                "libturbojpeg is not installed ({}); install Debian's libturbojpeg0",
                turbo_error()
            )
        })?),
    };
    match turbo {
        Some(t) => t.decode(data, info, need),
        None => decode_rust(data, info, need),
    }
}

/// An `AVI1` APP0 segment: tells `jpeg-decoder` the frame is AVI MJPEG,
/// whose Huffman tables are the standard ones when the frame has none.
const AVI1_APP0: [u8; 16] = [
    0xFF, 0xE0, 0x00, 0x0E, b'A', b'V', b'I', b'1', 0, 0, 0, 0, 0, 0, 0, 0,
];

fn decode_rust(data: &[u8], info: Info, need: (u32, u32)) -> Result<Decoded, String> {
    let patched;
    let data = if info.has_huffman_tables {
        data
    } else {
        patched = [&data[..2], &AVI1_APP0[..], &data[2..]].concat();
        &patched[..]
    };
    let n = pick((info.width, info.height), need, &[1, 2, 4, 8]);
    let mut d = jpeg_decoder::Decoder::new(data);
    let (w, h) = (scaled(info.width, n), scaled(info.height, n));
    d.scale(w.min(u16::MAX as u32) as u16, h.min(u16::MAX as u32) as u16)
        .map_err(|e| format!("MJPEG frame does not decode: {e}"))?;
    let px = d
        .decode()
        .map_err(|e| format!("MJPEG frame does not decode: {e}"))?;
    let got = d
        .info()
        .ok_or("MJPEG frame does not decode: no image info")?;
    let (w, h) = (got.width as u32, got.height as u32);
    let rgb = match got.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => px,
        jpeg_decoder::PixelFormat::L8 => px.iter().flat_map(|&g| [g, g, g]).collect(),
        other => return Err(format!("MJPEG frame in {other:?}, expected colour or grey")),
    };
    Ok(Decoded {
        rgb,
        width: w,
        height: h,
        eighths: n,
    })
}

type TjHandle = *mut c_void;

#[repr(C)]
#[derive(Clone, Copy)]
struct TjScalingFactor {
    num: c_int,
    denom: c_int,
}

/// The TurboJPEG functions we use (the 2.x API, also in 3.x).
struct TurboJpeg {
    init_decompress: unsafe extern "C" fn() -> TjHandle,
    decompress2: unsafe extern "C" fn(
        TjHandle,
        *const u8,
        c_ulong,
        *mut u8,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
    ) -> c_int,
    destroy: unsafe extern "C" fn(TjHandle) -> c_int,
    error_str2: unsafe extern "C" fn(TjHandle) -> *mut c_char,
    /// Scales it offers, in eighths.
    eighths: Vec<u32>,
}

// SAFETY: function pointers into a library that stays loaded; handles are
// per thread (below).
unsafe impl Sync for TurboJpeg {}
unsafe impl Send for TurboJpeg {}

const TJPF_RGB: c_int = 0;

static TURBO: OnceLock<Result<TurboJpeg, String>> = OnceLock::new();

/// libturbojpeg, opened once per process (`None` if absent).
fn turbojpeg() -> Option<&'static TurboJpeg> {
    TURBO.get_or_init(load_turbojpeg).as_ref().ok()
}

fn turbo_error() -> String {
    match TURBO.get_or_init(load_turbojpeg) {
        Ok(_) => "loaded".into(),
        Err(e) => e.clone(),
    }
}

/// The decoder `Decoder::Auto` uses here, for logs: `libjpeg-turbo` or
/// `jpeg-decoder (libturbojpeg not found: …)`.
pub fn auto_decoder() -> String {
    match turbojpeg() {
        Some(_) => "libjpeg-turbo (libturbojpeg.so.0)".into(),
        None => format!("jpeg-decoder ({})", turbo_error()),
    }
}

fn load_turbojpeg() -> Result<TurboJpeg, String> {
    let mut why = vec![];
    for name in [c"libturbojpeg.so.0", c"libturbojpeg.so"] {
        // SAFETY: dlopen with a valid C string; the library is never closed.
        let lib = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if lib.is_null() {
            // SAFETY: dlerror returns a message owned by libc or NULL.
            let e = unsafe { libc::dlerror() };
            if !e.is_null() {
                // SAFETY: a valid C string from dlerror.
                why.push(unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned());
            }
            continue;
        }
        let sym = |s: &CStr| -> Result<*mut c_void, String> {
            // SAFETY: dlsym on a live handle with a valid C string.
            let p = unsafe { libc::dlsym(lib, s.as_ptr()) };
            if p.is_null() {
                Err(format!("libturbojpeg lacks {}", s.to_string_lossy()))
            } else {
                Ok(p)
            }
        };
        // SAFETY: each symbol has the TurboJPEG 2.x signature it is cast to.
        let t = unsafe {
            let factors: unsafe extern "C" fn(*mut c_int) -> *mut TjScalingFactor =
                crate::dl::fn_ptr(sym(c"tjGetScalingFactors")?);
            let mut n = 0;
            let list = factors(&mut n);
            let mut eighths = vec![];
            if !list.is_null() {
                for f in std::slice::from_raw_parts(list, n.max(0) as usize) {
                    // Reductions that are a whole number of eighths.
                    if f.denom > 0 && (f.num * 8) % f.denom == 0 && f.num * 8 / f.denom <= 8 {
                        eighths.push((f.num * 8 / f.denom) as u32);
                    }
                }
            }
            TurboJpeg {
                init_decompress: crate::dl::fn_ptr(sym(c"tjInitDecompress")?),
                decompress2: crate::dl::fn_ptr(sym(c"tjDecompress2")?),
                destroy: crate::dl::fn_ptr(sym(c"tjDestroy")?),
                error_str2: crate::dl::fn_ptr(sym(c"tjGetErrorStr2")?),
                eighths: if eighths.is_empty() { vec![8] } else { eighths },
            }
        };
        return Ok(t);
    }
    Err(format!("libturbojpeg not found: {}", why.join("; ")))
}

/// One TurboJPEG decompressor per thread (a handle is not thread-safe).
struct Handle(TjHandle);

impl Drop for Handle {
    fn drop(&mut self) {
        if let (Some(t), false) = (turbojpeg(), self.0.is_null()) {
            // SAFETY: a handle from tjInitDecompress, destroyed once.
            unsafe { (t.destroy)(self.0) };
        }
    }
}

thread_local! {
    static HANDLE: std::cell::RefCell<Option<Handle>> = const { std::cell::RefCell::new(None) };
}

impl TurboJpeg {
    fn decode(&self, data: &[u8], info: Info, need: (u32, u32)) -> Result<Decoded, String> {
        HANDLE.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                // SAFETY: creates a decompressor; freed by Handle's drop.
                let h = unsafe { (self.init_decompress)() };
                if h.is_null() {
                    return Err("tjInitDecompress failed".to_string());
                }
                *slot = Some(Handle(h));
            }
            let h = slot.as_ref().expect("set above").0;
            let err = || {
                // SAFETY: a message owned by the handle.
                let p = unsafe { (self.error_str2)(h) };
                if p.is_null() {
                    "unknown error".to_string()
                } else {
                    // SAFETY: a valid C string.
                    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
                }
            };
            // libjpeg-turbo reads the same SOF; our parse gives the size.
            let full = (info.width, info.height);
            let n = pick(full, need, &self.eighths);
            let (sw, sh) = (scaled(full.0, n), scaled(full.1, n));
            let mut rgb = vec![0u8; sw as usize * sh as usize * 3];
            // SAFETY: rgb holds sh rows of sw*3 bytes.
            let r = unsafe {
                (self.decompress2)(
                    h,
                    data.as_ptr(),
                    data.len() as c_ulong,
                    rgb.as_mut_ptr(),
                    sw as c_int,
                    (sw * 3) as c_int,
                    sh as c_int,
                    TJPF_RGB,
                    0,
                )
            };
            if r != 0 {
                return Err(format!("MJPEG frame does not decode: {}", err()));
            }
            Ok(Decoded {
                rgb,
                width: sw,
                height: sh,
                eighths: n,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_the_smallest_that_cover_the_resized_size() {
        // 224 from 1080p: 1/4 (480x270).
        assert_eq!(pick((1920, 1080), (398, 224), &[1, 2, 4, 8]), 2);
        assert_eq!(pick((1920, 1080), (398, 224), &[1, 2, 3, 4, 5, 6, 7, 8]), 2);
        // 299 from 1080p: 1/2 with powers of two, 3/8 with libjpeg-turbo.
        assert_eq!(pick((1920, 1080), (532, 299), &[1, 2, 4, 8]), 4);
        assert_eq!(pick((1920, 1080), (532, 299), &[1, 2, 3, 4, 5, 6, 7, 8]), 3);
        // Nothing smaller covers it: full size.
        assert_eq!(pick((320, 240), (299, 299), &[1, 2, 4, 8]), 8);
    }

    #[test]
    fn info_reads_size_and_tables() {
        let img = image::RgbImage::from_pixel(40, 24, image::Rgb([200, 10, 30]));
        let jpg = crate::capture::encode::rgb_to_jpeg(&img, 85);
        let i = info(&jpg).unwrap();
        assert_eq!((i.width, i.height, i.has_huffman_tables), (40, 24, true));
        assert_eq!(info(b"not a jpeg"), None);
        let stripped = strip_huffman_tables(&jpg);
        assert!(!info(&stripped).unwrap().has_huffman_tables);
    }

    /// The frame without its DHT segments (what many UVC cameras send).
    pub(crate) fn strip_huffman_tables(jpg: &[u8]) -> Vec<u8> {
        let mut out = jpg[..2].to_vec();
        let mut at = 2;
        while at + 4 <= jpg.len() {
            let marker = jpg[at + 1];
            if marker == 0xDA {
                out.extend_from_slice(&jpg[at..]);
                break;
            }
            let len = u16::from_be_bytes([jpg[at + 2], jpg[at + 3]]) as usize;
            if marker != 0xC4 {
                out.extend_from_slice(&jpg[at..at + 2 + len]);
            }
            at += 2 + len;
        }
        out
    }
}

#[cfg(test)]
mod tolerance {
    use super::super::fused::tests::{frame, grey_diff, photo, spec};
    use super::super::{mjpeg_into, preprocess_reference_into, ResizeMode};
    use super::tests::strip_huffman_tables;
    use super::*;
    use crate::capture::{encode, PixelFormat};

    fn decoders() -> Vec<Decoder> {
        let mut d = vec![Decoder::Rust];
        if turbojpeg().is_some() {
            d.push(Decoder::TurboJpeg);
        } else if std::env::var("REQUIRE_REFERENCE_CHECKS").as_deref() == Ok("1") {
            panic!(
                "libturbojpeg is required (REQUIRE_REFERENCE_CHECKS=1): {}",
                turbo_error()
            );
        } else {
            eprintln!("SKIP: libturbojpeg: {}", turbo_error());
        }
        d
    }

    #[test]
    fn reduced_decode_stays_within_its_tolerance_of_the_full_size_reference() {
        for decoder in decoders() {
            let mut worst = [(0f32, 0f32); 3];
            let mut scales = std::collections::BTreeSet::new();
            for (w, h) in [(1920, 1080), (1280, 720), (640, 480)] {
                for name in ["coffee", "chelsea", "astronaut"] {
                    let jpg = encode::rgb_to_jpeg(&encode::scene(&photo(name), w, h), 85);
                    let f = frame(PixelFormat::Mjpeg, w, h, jpg, 0);
                    for mode in [ResizeMode::ShorterSideCrop, ResizeMode::Letterbox] {
                        for size in [224, 299] {
                            let s = spec(size, mode);
                            let (mut ours, mut reference) =
                                (vec![0.0; s.len()], vec![0.0; s.len()]);
                            mjpeg_into(&f, &s, &mut ours, decoder).unwrap();
                            preprocess_reference_into(&f, &s, &mut reference).unwrap();
                            for (c, (max, mean)) in
                                grey_diff(&ours, &reference, &s).into_iter().enumerate()
                            {
                                worst[c].0 = worst[c].0.max(max);
                                worst[c].1 = worst[c].1.max(mean);
                            }
                            let p = super::super::Placement::new(w, h, size, size, mode);
                            let eighths = decode(&f.data, (p.resized_w, p.resized_h), decoder)
                                .unwrap()
                                .eighths;
                            scales.insert((w, size, eighths));
                        }
                    }
                }
            }
            eprintln!("MJPEG {decoder:?} reduced vs full-size reference, per channel (max, mean) grey levels: {worst:?}; (frame width, input, scale/8): {scales:?}");
            for (max, mean) in worst {
                assert!(max <= 40.0 && mean <= 1.5, "{decoder:?}: {worst:?}");
            }
            // 1080p → 224 decodes at 1/4.
            assert!(scales.contains(&(1920, 224, 2)), "{scales:?}");
        }
    }

    #[test]
    fn frames_without_huffman_tables_decode_like_the_full_frame() {
        let jpg = encode::rgb_to_jpeg(&encode::scene(&photo("coffee"), 640, 480), 85);
        let stripped = strip_huffman_tables(&jpg);
        assert!(stripped.len() < jpg.len());
        assert!(
            image::load_from_memory_with_format(&stripped, image::ImageFormat::Jpeg).is_err(),
            "zune-jpeg (the image crate) fails on such frames"
        );
        for decoder in decoders() {
            for need in [(640, 480), (160, 120)] {
                let a = decode(&jpg, need, decoder).unwrap();
                let b = decode(&stripped, need, decoder).unwrap();
                assert_eq!((a.width, a.height), (b.width, b.height));
                assert!(
                    a.rgb == b.rgb,
                    "{decoder:?} at {need:?}: same pixels with the standard tables"
                );
            }
        }
        // The reference path decodes them too.
        let s = spec(224, ResizeMode::ShorterSideCrop);
        let (mut a, mut b) = (vec![0.0; s.len()], vec![0.0; s.len()]);
        preprocess_reference_into(
            &frame(PixelFormat::Mjpeg, 640, 480, stripped, 0),
            &s,
            &mut a,
        )
        .unwrap();
        preprocess_reference_into(&frame(PixelFormat::Mjpeg, 640, 480, jpg, 0), &s, &mut b)
            .unwrap();
        let d = grey_diff(&a, &b, &s);
        assert!(d.iter().all(|&(max, _)| max <= 4.0), "{d:?}");
    }

    #[test]
    fn a_corrupt_frame_is_an_error_not_a_panic() {
        let jpg = encode::rgb_to_jpeg(&encode::scene(&photo("chelsea"), 320, 240), 85);
        for decoder in decoders() {
            let cut = &jpg[..jpg.len() / 3];
            let mut garbled = jpg.clone();
            for b in garbled[200..400].iter_mut() {
                *b = 0xFF;
            }
            for bad in [cut, &garbled[..], &b"\xFF\xD8\xFF\xC0"[..]] {
                let _ = decode(bad, (224, 224), decoder); // Err or a damaged image, never a crash
            }
            assert!(decode(b"nope", (224, 224), decoder).is_err());
        }
    }

    /// Found by fuzzing: a 1 KB frame whose SOF claims 65328x6400 pixels
    /// kept the decoder busy past libFuzzer's 10 s limit. Refused now, by
    /// both decoders and the reference path.
    #[test]
    fn a_frame_claiming_a_huge_size_is_refused_at_once() {
        let data = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/regressions/mjpeg/timeout-huge-sof"),
        )
        .unwrap();
        let i = info(&data).unwrap();
        assert_eq!((i.width, i.height), (65328, 6400));
        let t = std::time::Instant::now();
        for d in [Decoder::Rust, Decoder::Auto] {
            let e = decode(&data, (224, 224), d).unwrap_err();
            assert!(e.contains("at most 8192"), "{e}");
        }
        let f =
            crate::capture::Frame::still("cam", crate::capture::PixelFormat::Mjpeg, 640, 480, data);
        assert!(crate::preprocess::convert::to_rgb8(&f).is_err());
        assert!(t.elapsed() < std::time::Duration::from_millis(100));
    }

    /// Found by fuzzing the frames target (fuzz/regressions/frames/
    /// timeout-jpeg-sof-unreadable; its first 7 bytes are the target's
    /// format, size and stride): a frame whose marker chain our parser
    /// cannot walk, so its size was never checked, went to the `image`
    /// crate's decoder, which found a 12288x8192 SOF and decoded it (0.7 s
    /// here, over 10 s under AddressSanitizer). The reference path now
    /// refuses what [`info`] cannot read, as the fused path does.
    #[test]
    fn a_frame_our_parser_cannot_read_is_refused_by_the_reference_path() {
        let data = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/regressions/frames/timeout-jpeg-sof-unreadable"),
        )
        .unwrap()[7..]
            .to_vec();
        assert!(info(&data).is_none());
        let t = std::time::Instant::now();
        let f =
            crate::capture::Frame::still("cam", crate::capture::PixelFormat::Mjpeg, 48, 32, data);
        let e = crate::preprocess::convert::to_rgb8(&f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a JPEG frame"), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_millis(100));
    }
}
