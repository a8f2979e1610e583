//! The quick trainer as a background job of the daemon: progress, stop, the comparison, the staged bundle.
