//! Tests still being written.
