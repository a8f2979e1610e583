//! Camera-side pixel encodings of an RGB image, for test frames, the fake
//! camera's streams and benchmarks: what a camera would send for a scene.
//! BT.601 limited range (the inverse of what preprocessing decodes).

use super::synthetic::rgb_to_ycbcr;

/// Packed RGB8 → YUYV 4:2:2 (chroma of each pixel pair averaged).
/// `width` must be even.
pub fn rgb_to_yuyv(rgb: &[u8], width: usize, height: usize) -> Vec<u8> {
    assert!(width.is_multiple_of(2), "YUYV needs an even width");
    let mut out = Vec::with_capacity(width * height * 2);
    for pair in rgb[..width * height * 3].chunks_exact(6) {
        let [y0, u0, v0] = rgb_to_ycbcr([pair[0], pair[1], pair[2]]);
        let [y1, u1, v1] = rgb_to_ycbcr([pair[3], pair[4], pair[5]]);
        out.extend_from_slice(&[
            y0,
            (u0 as u16 + u1 as u16).div_ceil(2) as u8,
            y1,
            (v0 as u16 + v1 as u16).div_ceil(2) as u8,
        ]);
    }
    out
}

/// Packed RGB8 → NV12 (chroma of each 2×2 block averaged). Width and
/// height must be even.
pub fn rgb_to_nv12(rgb: &[u8], width: usize, height: usize) -> Vec<u8> {
    assert!(
        width.is_multiple_of(2) && height.is_multiple_of(2),
        "NV12 needs even sizes"
    );
    let yuv: Vec<[u8; 3]> = rgb[..width * height * 3]
        .chunks_exact(3)
        .map(|p| rgb_to_ycbcr([p[0], p[1], p[2]]))
        .collect();
    let mut out: Vec<u8> = yuv.iter().map(|p| p[0]).collect();
    for y in (0..height).step_by(2) {
        for x in (0..width).step_by(2) {
            let at = |dx: usize, dy: usize, c: usize| yuv[(y + dy) * width + x + dx][c] as u16;
            for c in [1, 2] {
                out.push((at(0, 0, c) + at(1, 0, c) + at(0, 1, c) + at(1, 1, c)).div_ceil(4) as u8);
            }
        }
    }
    out
}

/// A photo scaled to fill `width × height` (shorter side, centre crop),
/// as packed RGB8: what a camera of that resolution sees.
pub fn scene(photo: &image::RgbImage, width: u32, height: u32) -> image::RgbImage {
    let (w, h) = photo.dimensions();
    let s = (width as f64 / w as f64).max(height as f64 / h as f64);
    let (sw, sh) = (
        ((w as f64 * s).round() as u32).max(width),
        ((h as f64 * s).round() as u32).max(height),
    );
    let scaled = image::imageops::resize(photo, sw, sh, image::imageops::FilterType::Triangle);
    image::imageops::crop_imm(&scaled, (sw - width) / 2, (sh - height) / 2, width, height)
        .to_image()
}

/// RGB8 → a baseline JPEG at `quality` (what an MJPEG camera sends).
pub fn rgb_to_jpeg(img: &image::RgbImage, quality: u8) -> Vec<u8> {
    let mut out = vec![];
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(img)
        .expect("JPEG encoding into memory");
    out
}

/// A `width × height` camera frame of `format` showing `photo` (MJPEG at
/// quality 90), each row padded with `row_padding` junk bytes (0 = tightly
/// packed). NV12 needs even sizes and YUYV an even width: odd ones are
/// rounded down.
pub fn frame_of(
    photo: &image::RgbImage,
    format: super::PixelFormat,
    width: u32,
    height: u32,
    row_padding: usize,
) -> super::Frame {
    use super::PixelFormat;
    let (w, h) = match format {
        PixelFormat::Nv12 => (width & !1, height & !1),
        PixelFormat::Yuyv => (width & !1, height),
        _ => (width, height),
    };
    let img = scene(photo, w, h);
    let (wu, hu) = (w as usize, h as usize);
    let rgb = img.as_raw();
    let (packed, row, rows): (Vec<u8>, usize, usize) = match format {
        PixelFormat::Rgb8 => (rgb.clone(), wu * 3, hu),
        PixelFormat::Bgr8 => (
            rgb.chunks_exact(3)
                .flat_map(|p| [p[2], p[1], p[0]])
                .collect(),
            wu * 3,
            hu,
        ),
        PixelFormat::Gray8 => (
            rgb.chunks_exact(3)
                .map(|p| ((p[0] as u32 * 77 + p[1] as u32 * 150 + p[2] as u32 * 29) >> 8) as u8)
                .collect(),
            wu,
            hu,
        ),
        PixelFormat::Yuyv => (rgb_to_yuyv(rgb, wu, hu), wu * 2, hu),
        PixelFormat::Nv12 => (rgb_to_nv12(rgb, wu, hu), wu, hu + hu.div_ceil(2)),
        PixelFormat::Mjpeg => {
            return super::Frame::still("cam", format, w, h, rgb_to_jpeg(&img, 90));
        }
    };
    let stride = row + row_padding;
    let mut data = vec![0xA5u8; stride * rows];
    for r in 0..rows {
        data[r * stride..r * stride + row].copy_from_slice(&packed[r * row..(r + 1) * row]);
    }
    let mut f = super::Frame::still("cam", format, w, h, data);
    f.stride = if row_padding == 0 { 0 } else { stride };
    f
}
