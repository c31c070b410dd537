//! Placeholder: filled in by the helper that owns it.
