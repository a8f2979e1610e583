//! Where the detector looks: squares around motion and around the people
//! already tracked, merged, at least the detector's input size (so the
//! detector sees them at its own resolution, not squeezed), or the whole
//! frame when they would cover most of it.
//!
//! The rules, in order ([`Planner::plan`]):
//!
//! 1. Each wanted box gets a square centred on it, its side the larger of
//!    the detector's input side (or [`Planner::with_min_side`]'s) and
//!    [`MARGIN`] × the box's longer side, rounded to whole pixels and
//!    shifted (not cut) to lie in the frame.
//! 2. Two squares merge into the square over both (shifted in likewise)
//!    when that square has no more pixels than the two together — one run
//!    then reads no more of the frame than two would, and sees both at no
//!    less than 1/√2 of their own resolution; repeated until no pair
//!    merges. Squares that overlap less stay apart: the detections a
//!    region's border cut are dropped afterwards ([`drop_cut`]).
//! 3. A square as large as the frame's shorter side, or squares covering
//!    more than `whole_frame_at` of the frame, → [`Plan::Whole`].
//! 4. More than `max_regions` squares: `max_regions` of them in reading
//!    order from a turn that advances each call, so a crowd is covered over
//!    ⌈n / max_regions⌉ calls; the rest are counted as deferred.
//!
//! It is Frigate's idea (regions at the model's size around motion and
//! tracked objects, detections cut by a region's edge dropped when another
//! region holds them), with our own rules.

use super::{BoxF, Detection};

/// A square's side is at least this many times the longer side of the box
/// it is for: the detector sees some context around a person.
pub const MARGIN: f32 = 1.2;

/// The detector's plan for one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The whole frame, once (fitted as the detector's spec says).
    Whole,
    /// These squares (frame pixels, inside the frame), one detector run each.
    Regions(Vec<BoxF>),
}

/// A plan and what it left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub plan: Plan,
    /// Regions over `max_regions`, left for the next detector frame.
    pub deferred: usize,
}

/// Plans regions for one camera (keeps the rotation that spreads a crowd's
/// regions over frames).
#[derive(Debug, Clone)]
pub struct Planner {
    max_regions: usize,
    whole_frame_at: f32,
    /// The smallest square's side (the input's longer side unless
    /// [`with_min_side`](Self::with_min_side) says otherwise).
    min_side: f32,
    /// Where the next crowd's turn starts (index into the reading order).
    turn: usize,
}

impl Planner {
    pub fn new(input: (u32, u32), max_regions: u32, whole_frame_at: f32) -> Self {
        Self {
            max_regions: max_regions.max(1) as usize,
            whole_frame_at,
            min_side: input.0.max(input.1) as f32,
            turn: 0,
        }
    }

    /// Squares down to `side` pixels instead of the detector's input size:
    /// smaller squares are enlarged to the input, so a far person is seen
    /// larger than at the input's own resolution (on vtest.avi SSDLite
    /// finds the small people of the top path more often at half the
    /// input than at the input size: tests/regions_detect.rs).
    pub fn with_min_side(mut self, side: u32) -> Self {
        self.min_side = side.max(1) as f32;
        self
    }

    /// Regions covering every box of `wanted` (frame pixels) in a
    /// `width × height` frame; empty `wanted` → `Regions(vec![])`.
    pub fn plan(&mut self, wanted: &[BoxF], width: u32, height: u32) -> Planned {
        let regions = |r: Vec<BoxF>, deferred| Planned {
            plan: Plan::Regions(r),
            deferred,
        };
        let whole = Planned {
            plan: Plan::Whole,
            deferred: 0,
        };
        if wanted.is_empty() {
            return regions(vec![], 0);
        }
        // `whole_frame_at = 0`: never squares.
        if self.whole_frame_at <= 0.0 {
            return whole;
        }
        let (fw, fh) = (width as f32, height as f32);
        let min_side = self.min_side;
        let mut squares = Vec::with_capacity(wanted.len());
        for b in wanted {
            let side = min_side.max(b.width().max(b.height()) * MARGIN);
            match square(b.centre(), side, fw, fh) {
                Some(s) => squares.push(s),
                None => return whole,
            }
        }
        let Some(mut squares) = merge(squares, fw, fh) else {
            return whole;
        };
        if union_area(&squares) > self.whole_frame_at * fw * fh {
            return whole;
        }
        let n = squares.len();
        if n <= self.max_regions {
            return regions(squares, 0);
        }
        // Reading order (top to bottom, then left to right by centre).
        squares.sort_by(|a, b| {
            let (ax, ay) = a.centre();
            let (bx, by) = b.centre();
            ay.total_cmp(&by).then(ax.total_cmp(&bx))
        });
        let m = self.max_regions;
        let start = self.turn % n;
        self.turn = (start + m) % n;
        let chosen = (start..start + m).map(|i| squares[i % n]).collect();
        regions(chosen, n - m)
    }
}

/// A `side`-pixel square centred on `centre`, shifted to lie in a
/// `fw × fh` frame; None when it cannot (as large as the shorter side).
fn square((cx, cy): (f32, f32), side: f32, fw: f32, fh: f32) -> Option<BoxF> {
    let side = side.ceil();
    if side >= fw.min(fh) {
        return None;
    }
    let x0 = (cx - side / 2.0).round().clamp(0.0, fw - side);
    let y0 = (cy - side / 2.0).round().clamp(0.0, fh - side);
    Some(BoxF::new(x0, y0, x0 + side, y0 + side))
}

/// Merges squares while some pair's covering square has no more pixels
/// than the pair (rule 2 of the module docs); None when a merged square
/// would not fit in the frame.
fn merge(mut squares: Vec<BoxF>, fw: f32, fh: f32) -> Option<Vec<BoxF>> {
    'again: loop {
        for i in 0..squares.len() {
            for j in i + 1..squares.len() {
                let (a, b) = (squares[i], squares[j]);
                let u = BoxF::new(
                    a.x0.min(b.x0),
                    a.y0.min(b.y0),
                    a.x1.max(b.x1),
                    a.y1.max(b.y1),
                );
                let side = u.width().max(u.height());
                if side * side > a.area() + b.area() {
                    continue;
                }
                squares[i] = square(u.centre(), side, fw, fh)?;
                squares.swap_remove(j);
                continue 'again;
            }
        }
        return Some(squares);
    }
}

/// The area of the union of `boxes` (exact: the plane cut along every
/// box edge, each cell counted once).
pub fn union_area(boxes: &[BoxF]) -> f32 {
    let edges = |f: fn(&BoxF) -> [f32; 2]| {
        let mut v: Vec<f32> = boxes.iter().flat_map(f).collect();
        v.sort_by(f32::total_cmp);
        v.dedup();
        v
    };
    let xs = edges(|b| [b.x0, b.x1]);
    let ys = edges(|b| [b.y0, b.y1]);
    let mut area = 0.0;
    for x in xs.windows(2) {
        for y in ys.windows(2) {
            let (mx, my) = ((x[0] + x[1]) / 2.0, (y[0] + y[1]) / 2.0);
            if boxes
                .iter()
                .any(|b| b.x0 <= mx && mx <= b.x1 && b.y0 <= my && my <= b.y1)
            {
                area += (x[1] - x[0]) * (y[1] - y[0]);
            }
        }
    }
    area
}

/// The share of `b`'s area inside the union of `squares` (for a box with
/// no area: 1 when its centre is in one, else 0).
pub fn covered(b: &BoxF, squares: &[BoxF]) -> f32 {
    if b.area() <= 0.0 {
        let (cx, cy) = b.centre();
        let inside = squares
            .iter()
            .any(|s| s.x0 <= cx && cx <= s.x1 && s.y0 <= cy && cy <= s.y1);
        return if inside { 1.0 } else { 0.0 };
    }
    let parts: Vec<BoxF> = squares
        .iter()
        .map(|s| BoxF {
            x0: s.x0.max(b.x0),
            y0: s.y0.max(b.y0),
            x1: s.x1.min(b.x1),
            y1: s.y1.min(b.y1),
        })
        .filter(|p| p.x0 < p.x1 && p.y0 < p.y1)
        .collect();
    union_area(&parts) / b.area()
}

/// Whether `b` reaches an edge of `region` that lies inside the frame
/// (`fw × fh`): the region cut it, so it may be part of a person only.
pub fn cut_by(b: &BoxF, region: &BoxF, fw: f32, fh: f32) -> bool {
    let tol = (region.width().max(region.height()) * 0.02).max(3.0);
    let inner = |edge: f32, frame_edge: f32| (edge - frame_edge).abs() > 0.5;
    (inner(region.x0, 0.0) && b.x0 <= region.x0 + tol)
        || (inner(region.y0, 0.0) && b.y0 <= region.y0 + tol)
        || (inner(region.x1, fw) && b.x1 >= region.x1 - tol)
        || (inner(region.y1, fh) && b.y1 >= region.y1 - tol)
}

/// A cut box whose area lies at least this much inside another region's
/// whole box of its class is that box's part.
pub const PART_OF: f32 = 0.6;

/// Detections of several regions (each with its region's index) → those
/// worth keeping: a detection cut by its region's inner border is dropped
/// when a detection of the same class from another region, not cut by
/// that one, holds most of it ([`PART_OF`]). A cut detection nothing else
/// holds is kept (a person seen partly beats a person missed). NMS over
/// the rest is the caller's.
pub fn drop_cut(
    found: Vec<(Detection, usize)>,
    regions: &[BoxF],
    width: u32,
    height: u32,
) -> Vec<Detection> {
    let (fw, fh) = (width as f32, height as f32);
    let cut: Vec<bool> = found
        .iter()
        .map(|(d, r)| cut_by(&d.bbox, &regions[*r], fw, fh))
        .collect();
    let held = |i: usize| {
        let (d, r) = &found[i];
        found.iter().zip(&cut).any(|((o, ro), &o_cut)| {
            ro != r
                && !o_cut
                && o.class == d.class
                && covered(&d.bbox, std::slice::from_ref(&o.bbox)) >= PART_OF
        })
    };
    (0..found.len())
        .filter(|&i| !(cut[i] && held(i)))
        .map(|i| found[i].0)
        .collect()
}

#[cfg(test)]
mod tests;
