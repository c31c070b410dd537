//! Fake in-cluster services for direct service-proxy mode. Placeholder.
