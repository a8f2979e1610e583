//! The slice of the kernel's V4L2 UAPI (`linux/videodev2.h`) that capture
//! uses, written by hand: no bindgen, so no libclang at build time.
//!
//! Layouts are the kernel's on 64-bit Linux (x86_64, aarch64).
//! `tests/v4l2.rs` compiles a C program against the system's
//! `linux/videodev2.h` and checks every size, the field offsets that matter
//! and every ioctl number against these.

#![allow(non_camel_case_types)]

use std::io;
use std::os::fd::RawFd;

pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const MEMORY_MMAP: u32 = 1;
pub const FIELD_ANY: u32 = 0;

pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const CAP_STREAMING: u32 = 0x0400_0000;
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;

pub const BUF_FLAG_ERROR: u32 = 0x0000_0040;
pub const CAP_TIMEPERFRAME: u32 = 0x1000;

pub const FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const FRMSIZE_TYPE_CONTINUOUS: u32 = 2;
pub const FRMSIZE_TYPE_STEPWISE: u32 = 3;
pub const FRMIVAL_TYPE_DISCRETE: u32 = 1;

/// A four-character code as V4L2 packs it.
pub const fn fourcc(code: &[u8; 4]) -> u32 {
    (code[0] as u32) | (code[1] as u32) << 8 | (code[2] as u32) << 16 | (code[3] as u32) << 24
}

pub const PIX_FMT_YUYV: u32 = fourcc(b"YUYV");
pub const PIX_FMT_MJPEG: u32 = fourcc(b"MJPG");
pub const PIX_FMT_JPEG: u32 = fourcc(b"JPEG");
pub const PIX_FMT_NV12: u32 = fourcc(b"NV12");

/// A fourcc as text (`YUYV`).
pub fn fourcc_str(code: u32) -> String {
    code.to_le_bytes()
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct v4l2_capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct v4l2_fmtdesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct v4l2_pix_format {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// `struct v4l2_format`: the union holds pointers in one member
/// (`v4l2_window`), so it is 8-aligned and starts at offset 8.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_format {
    pub type_: u32,
    pub fmt: v4l2_format_union,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_format_union {
    pub pix: v4l2_pix_format,
    pub raw_data: [u8; 200],
    _align: [u64; 25],
}

impl Default for v4l2_format {
    fn default() -> Self {
        Self {
            type_: 0,
            fmt: v4l2_format_union { raw_data: [0; 200] },
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct v4l2_requestbuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct v4l2_timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

/// `struct v4l2_buffer` for single-planar mmap buffers (`m` is the union of
/// `offset`, `userptr`, `planes`, `fd`: 8 bytes, 8-aligned).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct v4l2_buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: libc::timeval,
    pub timecode: v4l2_timecode,
    pub sequence: u32,
    pub memory: u32,
    /// `m.offset` in its low 32 bits.
    pub m: u64,
    pub length: u32,
    pub reserved2: u32,
    pub request_fd: i32,
}

impl v4l2_buffer {
    pub fn mmap_capture(index: u32) -> Self {
        Self {
            index,
            type_: BUF_TYPE_VIDEO_CAPTURE,
            bytesused: 0,
            flags: 0,
            field: 0,
            timestamp: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            timecode: v4l2_timecode::default(),
            sequence: 0,
            memory: MEMORY_MMAP,
            m: 0,
            length: 0,
            reserved2: 0,
            request_fd: 0,
        }
    }

    /// `m.offset`, the mmap offset of an mmap buffer.
    pub fn offset(&self) -> u32 {
        self.m as u32
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct v4l2_fract {
    pub numerator: u32,
    pub denominator: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct v4l2_captureparm {
    pub capability: u32,
    pub capturemode: u32,
    pub timeperframe: v4l2_fract,
    pub extendedmode: u32,
    pub readbuffers: u32,
    pub reserved: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_streamparm {
    pub type_: u32,
    pub parm: v4l2_streamparm_union,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_streamparm_union {
    pub capture: v4l2_captureparm,
    pub raw_data: [u8; 200],
}

impl Default for v4l2_streamparm {
    fn default() -> Self {
        Self {
            type_: 0,
            parm: v4l2_streamparm_union { raw_data: [0; 200] },
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct v4l2_frmsize_stepwise {
    pub min_width: u32,
    pub max_width: u32,
    pub step_width: u32,
    pub min_height: u32,
    pub max_height: u32,
    pub step_height: u32,
}

/// `struct v4l2_frmsizeenum`; for a discrete size the first two words of
/// `stepwise` are `width, height`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct v4l2_frmsizeenum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    pub stepwise: v4l2_frmsize_stepwise,
    pub reserved: [u32; 2],
}

/// `struct v4l2_frmivalenum`; for a discrete interval `stepwise[0]` is it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct v4l2_frmivalenum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub type_: u32,
    pub stepwise: [v4l2_fract; 3],
    pub reserved: [u32; 2],
}

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((b'V' as u64) << 8) | nr
}
const R: u64 = 2;
const W: u64 = 1;
const RW: u64 = 3;

pub const VIDIOC_QUERYCAP: u64 = ioc(R, 0, std::mem::size_of::<v4l2_capability>());
pub const VIDIOC_ENUM_FMT: u64 = ioc(RW, 2, std::mem::size_of::<v4l2_fmtdesc>());
pub const VIDIOC_G_FMT: u64 = ioc(RW, 4, std::mem::size_of::<v4l2_format>());
pub const VIDIOC_S_FMT: u64 = ioc(RW, 5, std::mem::size_of::<v4l2_format>());
pub const VIDIOC_REQBUFS: u64 = ioc(RW, 8, std::mem::size_of::<v4l2_requestbuffers>());
pub const VIDIOC_QUERYBUF: u64 = ioc(RW, 9, std::mem::size_of::<v4l2_buffer>());
pub const VIDIOC_QBUF: u64 = ioc(RW, 15, std::mem::size_of::<v4l2_buffer>());
pub const VIDIOC_DQBUF: u64 = ioc(RW, 17, std::mem::size_of::<v4l2_buffer>());
pub const VIDIOC_STREAMON: u64 = ioc(W, 18, std::mem::size_of::<i32>());
pub const VIDIOC_STREAMOFF: u64 = ioc(W, 19, std::mem::size_of::<i32>());
pub const VIDIOC_G_PARM: u64 = ioc(RW, 21, std::mem::size_of::<v4l2_streamparm>());
pub const VIDIOC_S_PARM: u64 = ioc(RW, 22, std::mem::size_of::<v4l2_streamparm>());
pub const VIDIOC_ENUM_FRAMESIZES: u64 = ioc(RW, 74, std::mem::size_of::<v4l2_frmsizeenum>());
pub const VIDIOC_ENUM_FRAMEINTERVALS: u64 = ioc(RW, 75, std::mem::size_of::<v4l2_frmivalenum>());

/// Every ioctl number with its C name, for the layout test.
pub const IOCTLS: [(&str, u64); 14] = [
    ("VIDIOC_QUERYCAP", VIDIOC_QUERYCAP),
    ("VIDIOC_ENUM_FMT", VIDIOC_ENUM_FMT),
    ("VIDIOC_G_FMT", VIDIOC_G_FMT),
    ("VIDIOC_S_FMT", VIDIOC_S_FMT),
    ("VIDIOC_REQBUFS", VIDIOC_REQBUFS),
    ("VIDIOC_QUERYBUF", VIDIOC_QUERYBUF),
    ("VIDIOC_QBUF", VIDIOC_QBUF),
    ("VIDIOC_DQBUF", VIDIOC_DQBUF),
    ("VIDIOC_STREAMON", VIDIOC_STREAMON),
    ("VIDIOC_STREAMOFF", VIDIOC_STREAMOFF),
    ("VIDIOC_G_PARM", VIDIOC_G_PARM),
    ("VIDIOC_S_PARM", VIDIOC_S_PARM),
    ("VIDIOC_ENUM_FRAMESIZES", VIDIOC_ENUM_FRAMESIZES),
    ("VIDIOC_ENUM_FRAMEINTERVALS", VIDIOC_ENUM_FRAMEINTERVALS),
];

/// `(C struct name, Rust size)` for the layout test.
pub const SIZES: [(&str, usize); 9] = [
    ("v4l2_capability", std::mem::size_of::<v4l2_capability>()),
    ("v4l2_fmtdesc", std::mem::size_of::<v4l2_fmtdesc>()),
    ("v4l2_format", std::mem::size_of::<v4l2_format>()),
    (
        "v4l2_requestbuffers",
        std::mem::size_of::<v4l2_requestbuffers>(),
    ),
    ("v4l2_buffer", std::mem::size_of::<v4l2_buffer>()),
    ("v4l2_streamparm", std::mem::size_of::<v4l2_streamparm>()),
    ("v4l2_frmsizeenum", std::mem::size_of::<v4l2_frmsizeenum>()),
    ("v4l2_frmivalenum", std::mem::size_of::<v4l2_frmivalenum>()),
    ("v4l2_pix_format", std::mem::size_of::<v4l2_pix_format>()),
];

/// `(C struct.field, Rust offset)` for the layout test.
pub const OFFSETS: [(&str, usize); 8] = [
    ("v4l2_format.fmt", std::mem::offset_of!(v4l2_format, fmt)),
    (
        "v4l2_buffer.timestamp",
        std::mem::offset_of!(v4l2_buffer, timestamp),
    ),
    (
        "v4l2_buffer.sequence",
        std::mem::offset_of!(v4l2_buffer, sequence),
    ),
    ("v4l2_buffer.m", std::mem::offset_of!(v4l2_buffer, m)),
    (
        "v4l2_buffer.length",
        std::mem::offset_of!(v4l2_buffer, length),
    ),
    (
        "v4l2_frmsizeenum.discrete",
        std::mem::offset_of!(v4l2_frmsizeenum, stepwise),
    ),
    (
        "v4l2_frmivalenum.discrete",
        std::mem::offset_of!(v4l2_frmivalenum, stepwise),
    ),
    (
        "v4l2_capability.capabilities",
        std::mem::offset_of!(v4l2_capability, capabilities),
    ),
];

/// One ioctl on `arg`, retried on EINTR.
///
/// # Safety
/// `T` must be the type the request `req` reads and writes.
pub unsafe fn xioctl<T>(fd: RawFd, req: u64, arg: &mut T) -> io::Result<()> {
    loop {
        // SAFETY: the caller pairs `req` with its argument type; `arg` is a
        // valid, exclusive pointer for the duration of the call.
        let r = unsafe { libc::ioctl(fd, req as _, arg as *mut T) };
        if r != -1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// A NUL-padded C string field as text.
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
