//! The `.json` beside each collected crop (`<stem>.png` + `<stem>.json` in
//! `collect.dir`): what was seen, when, by which model, and what it said.
//! A crop is complete only once its sidecar exists.

use serde::{Deserialize, Serialize};

/// The bundle that classified the crop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SidecarBundle {
    pub name: String,
    pub version: String,
}

/// One collected crop's sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    /// The crop's file name (`<stem>.png`), in the same folder.
    pub image: String,
    /// The camera's name as configured.
    pub camera: String,
    /// The frame's capture time, RFC 3339 in UTC with milliseconds.
    pub captured_at: String,
    /// The frame's sequence number from its camera (a files camera: the
    /// file's index in play order, from 0), so a crop can be matched to
    /// the frame it was cut from. Absent in older sidecars (read as 0).
    #[serde(default)]
    pub seq: u64,
    /// 16 hex digits, random per person per daemon run: never the
    /// tracker's id, never the same person across runs.
    pub person: String,
    /// 1 for the person's first kept view, then 2, ….
    pub view: u32,
    /// The person's box in the frame, `[x, y, w, h]` pixels.
    #[serde(rename = "box")]
    pub bbox: [u32; 4],
    /// The frame's size, `[width, height]`.
    pub frame: [u32; 2],
    /// The PNG's size (the bundle's input size), `[width, height]`.
    pub size: [u32; 2],
    pub bundle: SidecarBundle,
    /// The bundle's class ids, in the order of `probs`.
    pub classes: Vec<String>,
    /// The model's probabilities for this crop.
    pub probs: Vec<f32>,
    /// The class ids the bundle's decision picks from `probs` alone.
    pub decided: Vec<String>,
    /// Whether the head was blurred (`collect.blur_head`).
    pub head_blur: bool,
    /// The rows `[y0, y1)` of the image blurred: the top `head_fraction`
    /// of the person's box where it lands in the classifier's input;
    /// absent when nothing was (blur off, or the crop cut the head away).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_rows: Option<[u32; 2]>,
}

impl Sidecar {
    /// The capture time as a `SystemTime` (`None` if unparsable).
    pub fn captured(&self) -> Option<std::time::SystemTime> {
        humantime::parse_rfc3339(&self.captured_at).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_json_has_the_contract_field_names() {
        let s = Sidecar {
            image: "walkway-20261207T210000.123Z-0123456789abcdef-1.png".into(),
            camera: "walkway".into(),
            captured_at: "2026-12-07T21:00:00.123Z".into(),
            seq: 412,
            person: "0123456789abcdef".into(),
            view: 1,
            bbox: [1, 2, 3, 4],
            frame: [768, 576],
            size: [224, 224],
            bundle: SidecarBundle {
                name: "demo".into(),
                version: "1".into(),
            },
            classes: vec!["a".into(), "b".into()],
            probs: vec![0.1, 0.9],
            decided: vec!["b".into()],
            head_blur: true,
            head_rows: Some([0, 40]),
        };
        let v: serde_json::Value = serde_json::to_value(&s).unwrap();
        for k in [
            "image",
            "camera",
            "captured_at",
            "seq",
            "person",
            "view",
            "box",
            "frame",
            "size",
            "bundle",
            "classes",
            "probs",
            "decided",
            "head_blur",
            "head_rows",
        ] {
            assert!(v.get(k).is_some(), "{k} missing: {v}");
        }
        assert_eq!(v["bundle"]["version"], "1");
        assert_eq!(v["seq"], 412);
        // An older sidecar (no seq, no head rows) still reads.
        let mut old = v.clone();
        old.as_object_mut().unwrap().remove("seq");
        old.as_object_mut().unwrap().remove("head_rows");
        let old: Sidecar = serde_json::from_value(old).unwrap();
        assert_eq!((old.seq, old.head_rows), (0, None));
        let back: Sidecar = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
        assert!(back.captured().is_some());
    }
}
