//! Integration tests: one binary, a module per area. Tests that need an
//! outside reference (mosquitto, Python's onnx/onnxruntime/Pillow, the JD
//! label files in ../shared) skip with a message where it is absent;
//! with REQUIRE_REFERENCE_CHECKS=1 (as `.ci/run` sets) they fail instead.

mod common;

mod architecture;
mod backend_suite;
mod broker_auth;
mod broker_refusal;
mod bundle_and_cli;
mod bundle_install;
mod collect;
mod docs_links;
mod faults;
mod fleet;
mod fuzz_replay;
mod gate;
mod kernels;
mod label_files;
mod labels_page;
mod listener;
mod loss_paths;
mod motion_peer;
mod motion_telemetry;
mod mqtt_daemon;
mod outbox_delivery;
mod package;
mod people;
mod privacy;
mod reference;
mod regions;
mod regions_detect;
mod reload;
mod soak;
mod status_page;
mod store_day;
mod styles_real;
mod systemd;
mod systemd_nspawn;
mod teach_e2e;
mod teach_page;
mod teach_vtest;
mod tensorrt;
#[cfg(feature = "train")]
mod train_ablation;
#[cfg(feature = "train")]
mod train_cli;
#[cfg(feature = "train")]
mod train_export;
#[cfg(feature = "train")]
mod train_fashion;
#[cfg(feature = "train")]
mod train_gpu;
#[cfg(feature = "train")]
mod train_import;
#[cfg(feature = "train")]
mod train_quick;
mod v4l2;
