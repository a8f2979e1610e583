//! The label store: the CSV layout `stylecam train` reads, written atomically.
