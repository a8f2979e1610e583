//! The image steps of [`Motion::update`](super::Motion::update), each a
//! pure function over caller-owned buffers (no allocation once they have
//! grown): percentiles, a contrast lookup table, a 3×3 Gaussian blur, a
//! 3×3 dilation and 8-connected components. Their edge rules are
//! OpenCV's defaults (the blur reflects at the border without repeating
//! the edge pixel, `BORDER_REFLECT_101`; the dilation ignores what lies
//! outside), so tests/ref/motion_peer.py can do the same steps with cv2.

/// The `lo` and `hi` quantiles (0..1) of the pixels not flagged in
/// `masked` (empty: none flagged), nearest rank below
/// (`sorted[⌊q·(n−1)⌋]`); `None` when every pixel is masked.
pub fn percentiles(data: &[u8], masked: &[bool], lo: f32, hi: f32) -> Option<(u8, u8)> {
    let mut hist = [0u32; 256];
    if masked.is_empty() {
        data.iter().for_each(|&v| hist[v as usize] += 1);
    } else {
        data.iter()
            .zip(masked)
            .filter(|(_, &m)| !m)
            .for_each(|(&v, _)| hist[v as usize] += 1);
    }
    let n: u32 = hist.iter().sum();
    if n == 0 {
        return None;
    }
    let rank = |q: f32| {
        let k = (q * (n - 1) as f32) as u32;
        let mut seen = 0;
        for (v, &c) in hist.iter().enumerate() {
            seen += c;
            if seen > k {
                return v as u8;
            }
        }
        255
    };
    Some((rank(lo), rank(hi)))
}

/// Maps `lo..=hi` onto `0..=255` (clamped, rounded half up); the identity
/// when the range is under one grey level.
pub fn stretch_lut(lo: f32, hi: f32) -> [u8; 256] {
    let mut lut = [0u8; 256];
    let span = (hi - lo) as f64;
    for (v, out) in lut.iter_mut().enumerate() {
        *out = if span < 1.0 {
            v as u8
        } else {
            ((v as f64 - lo as f64) * 255.0 / span + 0.5)
                .floor()
                .clamp(0.0, 255.0) as u8
        };
    }
    lut
}

/// Neighbour index across the border, reflected without repeating the
/// edge (`-1 → 1`, `n → n−2`; a one-pixel side is its own neighbour).
#[inline]
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        0
    } else if i < 0 {
        (-i) as usize
    } else if i as usize >= n {
        2 * n - 2 - i as usize
    } else {
        i as usize
    }
}

/// 3×3 Gaussian (`[1 2 1]/4` each way), rounded half up: OpenCV's
/// `GaussianBlur(src, (3, 3), 0)` on 8-bit images.
pub fn blur3(src: &[u8], dst: &mut [u8], tmp: &mut [u16], w: usize, h: usize) {
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        let out = &mut tmp[y * w..(y + 1) * w];
        for x in 0..w {
            let l = row[reflect(x as isize - 1, w)] as u16;
            let r = row[reflect(x as isize + 1, w)] as u16;
            out[x] = l + 2 * row[x] as u16 + r;
        }
    }
    for y in 0..h {
        let (u, d) = (reflect(y as isize - 1, h), reflect(y as isize + 1, h));
        let (up, mid, down) = (&tmp[u * w..][..w], &tmp[y * w..][..w], &tmp[d * w..][..w]);
        for (x, o) in dst[y * w..(y + 1) * w].iter_mut().enumerate() {
            *o = ((up[x] + 2 * mid[x] + down[x] + 8) >> 4) as u8;
        }
    }
}

/// 3×3 dilation of a 0/1 image (a pixel is set when any neighbour is).
pub fn dilate3(src: &[u8], dst: &mut [u8], tmp: &mut [u8], w: usize, h: usize) {
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        let out = &mut tmp[y * w..(y + 1) * w];
        for x in 0..w {
            let a = if x > 0 { row[x - 1] } else { 0 };
            let b = if x + 1 < w { row[x + 1] } else { 0 };
            out[x] = a | row[x] | b;
        }
    }
    for y in 0..h {
        for x in 0..w {
            let mut v = tmp[y * w + x];
            if y > 0 {
                v |= tmp[(y - 1) * w + x];
            }
            if y + 1 < h {
                v |= tmp[(y + 1) * w + x];
            }
            dst[y * w + x] = v;
        }
    }
}

/// One 8-connected group of set pixels: its bounds (`x1`, `y1`
/// exclusive) and how many pixels it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
    pub area: u32,
}

/// The 8-connected components of the set pixels of `mask` into `out`
/// (cleared first). `seen` and `stack` are scratch space.
pub fn components(
    mask: &[u8],
    w: usize,
    h: usize,
    seen: &mut Vec<bool>,
    stack: &mut Vec<u32>,
    out: &mut Vec<Component>,
) {
    out.clear();
    seen.clear();
    seen.resize(w * h, false);
    for start in 0..w * h {
        if mask[start] == 0 || seen[start] {
            continue;
        }
        let (sx, sy) = ((start % w) as u32, (start / w) as u32);
        let mut c = Component {
            x0: sx,
            y0: sy,
            x1: sx + 1,
            y1: sy + 1,
            area: 0,
        };
        seen[start] = true;
        stack.clear();
        stack.push(start as u32);
        while let Some(i) = stack.pop() {
            let (x, y) = ((i as usize % w), (i as usize / w));
            c.area += 1;
            c.x0 = c.x0.min(x as u32);
            c.x1 = c.x1.max(x as u32 + 1);
            c.y0 = c.y0.min(y as u32);
            c.y1 = c.y1.max(y as u32 + 1);
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    let j = ny * w + nx;
                    if mask[j] != 0 && !seen[j] {
                        seen[j] = true;
                        stack.push(j as u32);
                    }
                }
            }
        }
        out.push(c);
    }
}
