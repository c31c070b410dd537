//! Table-driven tests of the whole policy against kubectl-proxy.md §4 and the golden configs.

mod filter_vectors;
mod fuzz;
mod golden;
mod header_vectors;
mod mux_vectors;
mod vectors;
