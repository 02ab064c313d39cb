//! Tests being written.
