//! One V4L2 capture node: open, describe, negotiate, stream (mmap).
//!
//! Written against the pitfalls seen with the `v4l` crate: a buffer is only
//! re-queued once we hold it (a timeout leaves every buffer with the
//! driver), a frame is `bytesused` long (not the whole buffer), and teardown
//! never panics (STREAMOFF / REQBUFS(0) / munmap / close errors are ignored:
//! after an unplug they fail with ENODEV, and there is nothing to do).

use super::sys::{self, xioctl};
use crate::capture::PixelFormat;
use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::time::Duration;

/// What `VIDIOC_QUERYCAP` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub driver: String,
    pub card: String,
    pub bus: String,
    /// The node captures video and can stream (mmap).
    pub can_capture: bool,
}

/// One pixel format with its sizes and frame rates.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatInfo {
    pub fourcc: u32,
    pub description: String,
    pub sizes: Vec<SizeInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SizeInfo {
    pub width: u32,
    pub height: u32,
    /// Discrete frame rates (frames per second), highest first; empty when
    /// the driver gives a range or nothing.
    pub fps: Vec<f64>,
}

/// What the driver granted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Granted {
    pub fourcc: u32,
    pub width: u32,
    pub height: u32,
    pub bytes_per_line: u32,
    /// Frames per second from `VIDIOC_G_PARM` (0 when the driver does not say).
    pub fps: f64,
}

impl Granted {
    pub fn pixel_format(&self) -> Option<PixelFormat> {
        fourcc_format(self.fourcc)
    }
}

/// The pixel formats we can preprocess.
pub fn fourcc_format(fourcc: u32) -> Option<PixelFormat> {
    match fourcc {
        sys::PIX_FMT_YUYV => Some(PixelFormat::Yuyv),
        sys::PIX_FMT_MJPEG | sys::PIX_FMT_JPEG => Some(PixelFormat::Mjpeg),
        sys::PIX_FMT_NV12 => Some(PixelFormat::Nv12),
        _ => None,
    }
}

/// An open node (closed on drop).
#[derive(Debug)]
pub struct Device {
    fd: RawFd,
}

impl Device {
    /// Opens a node non-blocking (frames are waited for with `poll`).
    pub fn open(path: &Path) -> io::Result<Self> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL byte"))?;
        // SAFETY: a valid C string; the fd is owned by the returned Device.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    pub fn identity(&self) -> io::Result<Identity> {
        let mut cap = sys::v4l2_capability::default();
        // SAFETY: QUERYCAP fills a v4l2_capability.
        unsafe { xioctl(self.fd, sys::VIDIOC_QUERYCAP, &mut cap)? };
        let caps = if cap.capabilities & sys::CAP_DEVICE_CAPS != 0 {
            cap.device_caps
        } else {
            cap.capabilities
        };
        Ok(Identity {
            driver: sys::c_str(&cap.driver),
            card: sys::c_str(&cap.card),
            bus: sys::c_str(&cap.bus_info),
            can_capture: caps & sys::CAP_VIDEO_CAPTURE != 0 && caps & sys::CAP_STREAMING != 0,
        })
    }

    /// Every capture format with its sizes and rates. Errors are returned,
    /// not hidden as an empty list.
    pub fn formats(&self) -> io::Result<Vec<FormatInfo>> {
        let mut out = vec![];
        for index in 0.. {
            let mut d = sys::v4l2_fmtdesc {
                index,
                type_: sys::BUF_TYPE_VIDEO_CAPTURE,
                ..Default::default()
            };
            // SAFETY: ENUM_FMT fills a v4l2_fmtdesc.
            match unsafe { xioctl(self.fd, sys::VIDIOC_ENUM_FMT, &mut d) } {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => return Err(e),
            }
            out.push(FormatInfo {
                fourcc: d.pixelformat,
                description: sys::c_str(&d.description),
                sizes: self.sizes(d.pixelformat)?,
            });
        }
        Ok(out)
    }

    fn sizes(&self, fourcc: u32) -> io::Result<Vec<SizeInfo>> {
        let mut out = vec![];
        for index in 0.. {
            let mut s = sys::v4l2_frmsizeenum {
                index,
                pixel_format: fourcc,
                ..Default::default()
            };
            // SAFETY: ENUM_FRAMESIZES fills a v4l2_frmsizeenum.
            match unsafe { xioctl(self.fd, sys::VIDIOC_ENUM_FRAMESIZES, &mut s) } {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => return Err(e),
            }
            let (width, height) = match s.type_ {
                sys::FRMSIZE_TYPE_DISCRETE => (s.stepwise.min_width, s.stepwise.max_width),
                // A range: list its largest size.
                _ => (s.stepwise.max_width, s.stepwise.max_height),
            };
            out.push(SizeInfo {
                width,
                height,
                fps: self.rates(fourcc, width, height)?,
            });
            if s.type_ != sys::FRMSIZE_TYPE_DISCRETE {
                break;
            }
        }
        Ok(out)
    }

    fn rates(&self, fourcc: u32, width: u32, height: u32) -> io::Result<Vec<f64>> {
        let mut out = vec![];
        for index in 0.. {
            let mut r = sys::v4l2_frmivalenum {
                index,
                pixel_format: fourcc,
                width,
                height,
                ..Default::default()
            };
            // SAFETY: ENUM_FRAMEINTERVALS fills a v4l2_frmivalenum.
            match unsafe { xioctl(self.fd, sys::VIDIOC_ENUM_FRAMEINTERVALS, &mut r) } {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOTTY)) => {
                    break
                }
                Err(e) => return Err(e),
            }
            if r.type_ != sys::FRMIVAL_TYPE_DISCRETE {
                break;
            }
            let f = r.stepwise[0];
            if f.numerator > 0 {
                out.push(f.denominator as f64 / f.numerator as f64);
            }
        }
        out.sort_by(|a, b| b.total_cmp(a));
        Ok(out)
    }

    /// Asks for a format and rate; returns what the driver granted.
    pub fn negotiate(&self, fourcc: u32, width: u32, height: u32, fps: f64) -> io::Result<Granted> {
        let mut f = sys::v4l2_format {
            type_: sys::BUF_TYPE_VIDEO_CAPTURE,
            ..Default::default()
        };
        f.fmt.pix = sys::v4l2_pix_format {
            width,
            height,
            pixelformat: fourcc,
            field: sys::FIELD_ANY,
            ..Default::default()
        };
        // SAFETY: S_FMT reads and writes a v4l2_format.
        unsafe { xioctl(self.fd, sys::VIDIOC_S_FMT, &mut f)? };
        // SAFETY: the driver filled the `pix` member for a capture type.
        let pix = unsafe { f.fmt.pix };
        let mut p = sys::v4l2_streamparm {
            type_: sys::BUF_TYPE_VIDEO_CAPTURE,
            ..Default::default()
        };
        let mut granted_fps = 0.0;
        // SAFETY: G_PARM/S_PARM read and write a v4l2_streamparm.
        if unsafe { xioctl(self.fd, sys::VIDIOC_G_PARM, &mut p) }.is_ok() {
            // SAFETY: the capture member, for a capture type.
            let can_set = unsafe { p.parm.capture.capability } & sys::CAP_TIMEPERFRAME != 0;
            if fps > 0.0 && can_set {
                let denominator = (fps * 1000.0).round() as u32;
                p.parm.capture = sys::v4l2_captureparm {
                    timeperframe: sys::v4l2_fract {
                        numerator: 1000,
                        denominator,
                    },
                    ..Default::default()
                };
                // A driver that cannot change its rate keeps its own.
                // SAFETY: as above.
                let _ = unsafe { xioctl(self.fd, sys::VIDIOC_S_PARM, &mut p) };
            }
            // SAFETY: as above.
            let t = unsafe { p.parm.capture.timeperframe };
            if t.numerator > 0 {
                granted_fps = t.denominator as f64 / t.numerator as f64;
            }
        }
        Ok(Granted {
            fourcc: pix.pixelformat,
            width: pix.width,
            height: pix.height,
            bytes_per_line: pix.bytesperline,
            fps: granted_fps,
        })
    }

    /// Allocates and maps `count` buffers, queues them and starts streaming.
    pub fn stream(self, count: u32) -> io::Result<Stream> {
        let mut req = sys::v4l2_requestbuffers {
            count,
            type_: sys::BUF_TYPE_VIDEO_CAPTURE,
            memory: sys::MEMORY_MMAP,
            ..Default::default()
        };
        // SAFETY: REQBUFS reads and writes a v4l2_requestbuffers.
        unsafe { xioctl(self.fd, sys::VIDIOC_REQBUFS, &mut req)? };
        if req.count == 0 {
            return Err(io::Error::other("the driver granted no buffers"));
        }
        let mut stream = Stream {
            device: self,
            maps: vec![],
            streaming: false,
        };
        for index in 0..req.count {
            let mut b = sys::v4l2_buffer::mmap_capture(index);
            // SAFETY: QUERYBUF fills a v4l2_buffer.
            unsafe { xioctl(stream.device.fd, sys::VIDIOC_QUERYBUF, &mut b)? };
            // SAFETY: maps the driver's buffer `index` at the offset it gave;
            // unmapped in Stream's drop.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    b.length as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    stream.device.fd,
                    b.offset() as libc::off_t,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            stream.maps.push((ptr as *mut u8, b.length as usize));
        }
        for index in 0..req.count {
            stream.queue(index)?;
        }
        let mut t = sys::BUF_TYPE_VIDEO_CAPTURE as i32;
        // SAFETY: STREAMON reads an int buffer type.
        unsafe { xioctl(stream.device.fd, sys::VIDIOC_STREAMON, &mut t)? };
        stream.streaming = true;
        Ok(stream)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: our fd, closed once. An error (ENODEV after an unplug) is
        // of no use here.
        unsafe { libc::close(self.fd) };
    }
}

/// A buffer the driver filled, borrowed until [`Stream::requeue`].
#[derive(Debug, Clone, Copy)]
pub struct Filled {
    pub index: u32,
    pub bytes_used: usize,
    pub sequence: u32,
    /// The driver's timestamp (CLOCK_MONOTONIC for UVC and most drivers).
    pub timestamp: Duration,
    /// The driver flagged the data as corrupt (`V4L2_BUF_FLAG_ERROR`).
    pub error: bool,
}

/// A streaming node with its mapped buffers.
#[derive(Debug)]
pub struct Stream {
    device: Device,
    maps: Vec<(*mut u8, usize)>,
    streaming: bool,
}

// SAFETY: the mappings are owned by the Stream and only touched through it.
unsafe impl Send for Stream {}

/// What waiting for a frame gave.
#[derive(Debug)]
pub enum Wait {
    Ready(Filled),
    /// Nothing within the timeout; every buffer is still with the driver.
    Timeout,
}

impl Stream {
    fn queue(&self, index: u32) -> io::Result<()> {
        let mut b = sys::v4l2_buffer::mmap_capture(index);
        // SAFETY: QBUF reads and writes a v4l2_buffer.
        unsafe { xioctl(self.device.fd, sys::VIDIOC_QBUF, &mut b) }
    }

    /// Waits up to `timeout` for a filled buffer.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Wait> {
        let mut p = libc::pollfd {
            fd: self.device.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(Wait::Timeout);
            }
            return Err(e);
        }
        if r == 0 {
            return Ok(Wait::Timeout);
        }
        // POLLERR/POLLHUP: DQBUF says why (ENODEV after an unplug).
        let mut b = sys::v4l2_buffer::mmap_capture(0);
        // SAFETY: DQBUF fills a v4l2_buffer.
        match unsafe { xioctl(self.device.fd, sys::VIDIOC_DQBUF, &mut b) } {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                if p.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                    return Err(io::Error::other("the device reported an error (POLLERR)"));
                }
                return Ok(Wait::Timeout);
            }
            Err(e) => return Err(e),
        }
        let len = self.maps.get(b.index as usize).map_or(0, |m| m.1);
        Ok(Wait::Ready(Filled {
            index: b.index,
            bytes_used: (b.bytesused as usize).min(len),
            sequence: b.sequence,
            timestamp: Duration::new(b.timestamp.tv_sec as u64, b.timestamp.tv_usec as u32 * 1000),
            error: b.flags & sys::BUF_FLAG_ERROR != 0,
        }))
    }

    /// The bytes of a filled buffer.
    pub fn data(&self, f: &Filled) -> &[u8] {
        let (ptr, len) = self.maps[f.index as usize];
        // SAFETY: the mapping is live while the Stream is, and the driver
        // does not write a buffer we hold (dequeued, not yet re-queued).
        unsafe { std::slice::from_raw_parts(ptr, f.bytes_used.min(len)) }
    }

    /// Gives a buffer back to the driver.
    pub fn requeue(&mut self, f: Filled) -> io::Result<()> {
        self.queue(f.index)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.streaming {
            let mut t = sys::BUF_TYPE_VIDEO_CAPTURE as i32;
            // SAFETY: STREAMOFF reads an int; errors (ENODEV) are ignored.
            let _ = unsafe { xioctl(self.device.fd, sys::VIDIOC_STREAMOFF, &mut t) };
        }
        for &(ptr, len) in &self.maps {
            // SAFETY: each mapping was made by `stream` and is unmapped once.
            unsafe { libc::munmap(ptr as *mut libc::c_void, len) };
        }
        let mut req = sys::v4l2_requestbuffers {
            count: 0,
            type_: sys::BUF_TYPE_VIDEO_CAPTURE,
            memory: sys::MEMORY_MMAP,
            ..Default::default()
        };
        // SAFETY: REQBUFS(0) frees the buffers; errors are ignored.
        let _ = unsafe { xioctl(self.device.fd, sys::VIDIOC_REQBUFS, &mut req) };
        // The Device field closes the fd after this.
    }
}
