//! The model host of biomed_ner: everything about running a model that does not need
//! PostgreSQL, shared by the extension (which runs a model in a backend) and the inference
//! service's model process ([`server`]), which must never call PostgreSQL. This crate does not
//! depend on pgrx, so the compiler keeps it that way.
//!
//! - [`ModelSpec`]: which model, on which device, in which precision, on how many threads;
//!   the settings build it and the socket carries it;
//! - [`load`]: the device and the pipeline of a spec, with every refusal in one place;
//! - [`pool`]: the one builder of inference thread pools;
//! - [`memory`]: what a process gives back to the system after a call;
//! - [`Failure`]: an error with its SQLSTATE as data, raised by the extension;
//! - [`protocol`] and [`server`]: the inference service's messages and its model process.

pub mod failure;
pub mod load;
pub mod memory;
pub mod model_path;
pub mod pool;
pub mod protocol;
pub mod server;
pub mod spec;

pub use failure::{Failure, SqlState};
pub use spec::{CallOptions, DeviceChoice, ModelSpec, Named};
