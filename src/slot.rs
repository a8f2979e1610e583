//! Where one preprocessed frame goes: a slot of a backend's input buffer.
//!
//! A leaf shared by `preprocess` (which fills slots) and `infer` (whose
//! backends own the buffer), so neither stage depends on the other.

/// One `[3,H,W]` f32 slot of a backend's input batch.
pub enum Slot<'a> {
    /// The buffer lives in host memory (the CPU backends): `3*H*W` values.
    Host(&'a mut [f32]),
    /// The buffer lives on a GPU (the CUDA/TensorRT backends): a device
    /// pointer to `len` f32 values and the stream the backend runs on, so a
    /// GPU preprocessor writes there with no host round trip. No backend of
    /// this version hands one out yet.
    Device(DeviceSlot),
}

/// A device-memory slot: raw CUDA handles, valid until the backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSlot {
    /// `CUdeviceptr` of the slot's first value.
    pub ptr: u64,
    /// Number of f32 values (`3*H*W`).
    pub len: usize,
    /// `CUstream` the backend's inference runs on.
    pub stream: usize,
}

impl Slot<'_> {
    /// Number of f32 values the slot holds.
    pub fn len(&self) -> usize {
        match self {
            Slot::Host(s) => s.len(),
            Slot::Device(d) => d.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
