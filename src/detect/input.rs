//! An RGB8 frame → the detector's input tensor.
//!
//! Resampling is plain bilinear with half-pixel centres and no
//! antialiasing — OpenCV's `INTER_LINEAR`, what detector exports are fed
//! with (the SSD wheel's own API and Ultralytics both call `cv2.resize`) —
//! not the classifier's antialiased filter: a detector trained on
//! `cv2.resize` input sees the same pixels here.

use super::spec::{Channels, DetectorSpec, Fit, Layout};
use super::BoxF;

/// Where the frame lands in the detector's input: input px = frame px ·
/// scale + pad, per axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub scale_x: f32,
    pub scale_y: f32,
    pub pad_x: f32,
    pub pad_y: f32,
    pub frame_w: u32,
    pub frame_h: u32,
}

impl Geometry {
    pub fn new(spec: &DetectorSpec, frame_w: u32, frame_h: u32) -> Self {
        let sx = spec.width as f32 / frame_w as f32;
        let sy = spec.height as f32 / frame_h as f32;
        match spec.fit {
            Fit::Stretch => Self {
                scale_x: sx,
                scale_y: sy,
                pad_x: 0.0,
                pad_y: 0.0,
                frame_w,
                frame_h,
            },
            Fit::Letterbox => {
                let s = sx.min(sy);
                let (rw, rh) = ((frame_w as f32 * s).round(), (frame_h as f32 * s).round());
                Self {
                    scale_x: s,
                    scale_y: s,
                    pad_x: ((spec.width as f32 - rw) / 2.0).floor(),
                    pad_y: ((spec.height as f32 - rh) / 2.0).floor(),
                    frame_w,
                    frame_h,
                }
            }
        }
    }

    /// A box in input pixels → frame pixels, clipped to the frame.
    pub fn to_frame(&self, b: BoxF) -> BoxF {
        BoxF::new(
            (b.x0 - self.pad_x) / self.scale_x,
            (b.y0 - self.pad_y) / self.scale_y,
            (b.x1 - self.pad_x) / self.scale_x,
            (b.y1 - self.pad_y) / self.scale_y,
        )
        .clip(self.frame_w as f32, self.frame_h as f32)
    }

    /// Resized size of the frame inside the input.
    fn resized(&self) -> (usize, usize) {
        (
            (self.frame_w as f32 * self.scale_x).round() as usize,
            (self.frame_h as f32 * self.scale_y).round() as usize,
        )
    }
}

/// Bilinear taps (half-pixel centres) of `out` samples from `size` inputs.
fn taps(size: usize, out: usize) -> Vec<(usize, usize, f32)> {
    let scale = size as f32 / out as f32;
    (0..out)
        .map(|i| {
            let s = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
            let a = (s.floor() as usize).min(size - 1);
            let b = (a + 1).min(size - 1);
            (a, b, s - a as f32)
        })
        .collect()
}

/// Fills `out` (`spec.input_shape()` values) from a packed RGB8 frame;
/// returns where the frame landed.
pub fn fill(
    spec: &DetectorSpec,
    rgb: &[u8],
    frame_w: u32,
    frame_h: u32,
    out: &mut Vec<f32>,
) -> Geometry {
    fill_crop(spec, rgb, frame_w, (0, 0, frame_w, frame_h), out)
}

/// [`fill`] from one region of the frame (frame pixels; rounded outwards
/// to whole pixels and clipped to the frame), resized to the detector's
/// input as if it were the whole frame: the same as cropping it first.
/// The returned geometry maps the input back to frame pixels.
pub fn fill_region(
    spec: &DetectorSpec,
    rgb: &[u8],
    frame_w: u32,
    frame_h: u32,
    region: BoxF,
    out: &mut Vec<f32>,
) -> Geometry {
    let r = region.clip(frame_w as f32, frame_h as f32);
    let x0 = (r.x0.floor() as u32).min(frame_w.saturating_sub(1));
    let y0 = (r.y0.floor() as u32).min(frame_h.saturating_sub(1));
    let w = (r.x1.ceil() as u32)
        .saturating_sub(x0)
        .clamp(1, frame_w - x0);
    let h = (r.y1.ceil() as u32)
        .saturating_sub(y0)
        .clamp(1, frame_h - y0);
    let g = fill_crop(spec, rgb, frame_w, (x0, y0, w, h), out);
    // Input px = (frame px − origin)·scale + pad.
    Geometry {
        pad_x: g.pad_x - x0 as f32 * g.scale_x,
        pad_y: g.pad_y - y0 as f32 * g.scale_y,
        frame_w,
        frame_h,
        ..g
    }
}

/// Fills `out` from the `(x0, y0, w, h)` crop of a packed RGB8 frame
/// `frame_w` wide; the geometry is the crop's own (crop pixels).
fn fill_crop(
    spec: &DetectorSpec,
    rgb: &[u8],
    frame_w: u32,
    (cx, cy, cw, ch): (u32, u32, u32, u32),
    out: &mut Vec<f32>,
) -> Geometry {
    let g = Geometry::new(spec, cw, ch);
    let (iw, ih) = (spec.width as usize, spec.height as usize);
    let (rw, rh) = g.resized();
    let (rw, rh) = (rw.clamp(1, iw), rh.clamp(1, ih));
    let (px, py) = (g.pad_x as usize, g.pad_y as usize);
    let (fw, cw, cx, cy) = (frame_w as usize, cw as usize, cx as usize, cy as usize);
    let xs = taps(cw, rw);
    let ys = taps(ch as usize, rh);
    let order: [usize; 3] = match spec.channels {
        Channels::Rgb => [0, 1, 2],
        Channels::Bgr => [2, 1, 0],
    };
    let pad = spec.pad * spec.scale + spec.offset;
    out.clear();
    out.resize(3 * iw * ih, pad);
    let plane = iw * ih;
    let mut row = vec![0f32; cw * 3];
    let line = |y: usize| {
        let at = ((cy + y) * fw + cx) * 3;
        &rgb[at..at + cw * 3]
    };
    for (oy, &(y0, y1, wy)) in ys.iter().enumerate() {
        let (r0, r1) = (line(y0), line(y1));
        for ((v, &a), &b) in row.iter_mut().zip(r0).zip(r1) {
            *v = a as f32 + (b as f32 - a as f32) * wy;
        }
        let y = oy + py;
        for (ox, &(x0, x1, wx)) in xs.iter().enumerate() {
            let x = ox + px;
            for (k, &c) in order.iter().enumerate() {
                let (a, b) = (row[x0 * 3 + c], row[x1 * 3 + c]);
                let v = (a + (b - a) * wx) * spec.scale + spec.offset;
                let at = match spec.layout {
                    Layout::Nhwc => (y * iw + x) * 3 + k,
                    Layout::Nchw => k * plane + y * iw + x,
                };
                out[at] = v;
            }
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::spec::OutputFormat;

    #[test]
    fn identity_size_scales_and_orders_channels() {
        let mut spec = DetectorSpec::ssdlite("d", "0");
        spec.width = 2;
        spec.height = 1;
        let rgb = [0u8, 100, 255, 255, 0, 50];
        let mut out = vec![];
        fill(&spec, &rgb, 2, 1, &mut out);
        let want: Vec<f32> = rgb.iter().map(|&v| v as f32 * 2.0 / 255.0 - 1.0).collect();
        for (a, b) in out.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{out:?} vs {want:?}");
        }
        spec.layout = Layout::Nchw;
        spec.channels = Channels::Bgr;
        fill(&spec, &rgb, 2, 1, &mut out);
        // Planes B, G, R; pixel 0 then pixel 1.
        let want: Vec<f32> = [255u8, 50, 100, 0, 0, 255]
            .iter()
            .map(|&v| v as f32 * 2.0 / 255.0 - 1.0)
            .collect();
        for (a, b) in out.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{out:?} vs {want:?}");
        }
    }

    #[test]
    fn letterbox_pads_and_maps_back() {
        let mut spec = DetectorSpec::ssdlite("d", "0");
        spec.output = OutputFormat::Yolov8;
        spec.width = 4;
        spec.height = 4;
        spec.layout = Layout::Nchw;
        spec.fit = Fit::Letterbox;
        spec.scale = 1.0;
        spec.offset = 0.0;
        // 4x2 white frame → rows 1..3 white, rows 0 and 3 padding (114).
        let rgb = [255u8; 4 * 2 * 3];
        let mut out = vec![];
        let g = fill(&spec, &rgb, 4, 2, &mut out);
        assert_eq!((g.pad_x, g.pad_y), (0.0, 1.0));
        let red: Vec<f32> = out[..16].to_vec();
        assert_eq!(&red[..4], &[114.0; 4]);
        assert_eq!(&red[4..12], &[255.0; 8]);
        assert_eq!(&red[12..], &[114.0; 4]);
        let b = g.to_frame(BoxF::new(0.0, 1.0, 4.0, 3.0));
        assert_eq!(b, BoxF::new(0.0, 0.0, 4.0, 2.0));
    }

    #[test]
    fn downscale_matches_opencv_inter_linear_by_hand() {
        // 4 → 2: half-pixel centres sample at 0.5 and 2.5: the mean of
        // each pair.
        let mut spec = DetectorSpec::ssdlite("d", "0");
        spec.width = 2;
        spec.height = 1;
        spec.scale = 1.0;
        spec.offset = 0.0;
        let grey = [0u8, 40, 80, 120];
        let rgb: Vec<u8> = grey.iter().flat_map(|&v| [v, v, v]).collect();
        let mut out = vec![];
        fill(&spec, &rgb, 4, 1, &mut out);
        assert_eq!((out[0], out[3]), (20.0, 100.0));
    }

    #[test]
    fn a_region_fills_like_its_crop_and_maps_back_to_the_frame() {
        let mut spec = DetectorSpec::ssdlite("d", "0");
        spec.width = 5;
        spec.height = 5;
        let (w, h) = (23u32, 17u32);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect();
        // The crop (4, 3) 10×10, cut out by hand.
        let (x0, y0, side) = (4usize, 3usize, 10usize);
        let mut crop = Vec::new();
        for y in y0..y0 + side {
            let at = (y * w as usize + x0) * 3;
            crop.extend_from_slice(&rgb[at..at + side * 3]);
        }
        let (mut a, mut b) = (vec![], vec![]);
        fill(&spec, &crop, side as u32, side as u32, &mut a);
        let region = BoxF::new(4.0, 3.0, 14.0, 13.0);
        let g = fill_region(&spec, &rgb, w, h, region, &mut b);
        assert_eq!(a, b);
        // The input's corners land on the region's corners.
        let back = g.to_frame(BoxF::new(0.0, 0.0, 5.0, 5.0));
        assert!(
            (back.x0 - 4.0).abs() < 1e-4 && (back.y1 - 13.0).abs() < 1e-4,
            "{back:?}"
        );
        // A region past the frame is clipped to it.
        let g = fill_region(&spec, &rgb, w, h, BoxF::new(15.0, 10.0, 40.0, 30.0), &mut b);
        let back = g.to_frame(BoxF::new(0.0, 0.0, 5.0, 5.0));
        assert_eq!(back, BoxF::new(15.0, 10.0, 23.0, 17.0));
    }
}
