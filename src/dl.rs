//! Function pointers from `dlopen`ed libraries (libturbojpeg, NVRTC).

use std::ffi::c_void;

/// A symbol's address as the function pointer type `F`.
///
/// # Safety
/// `F` must be a function pointer type matching the symbol's signature.
pub(crate) unsafe fn fn_ptr<F: Copy>(p: *mut c_void) -> F {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: same size; the caller vouches for the signature.
    unsafe { std::mem::transmute_copy(&p) }
}
