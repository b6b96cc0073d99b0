//! End-to-end tests of the `weft` binaries and pipeline processes, one binary: each module a
//! subject (crashes, signals, isolated steps, Slurm, S3, the server databases, the server).

mod common;

mod binaries;
mod crash;
mod first_minutes;
mod isolated;
mod lifecycle;
mod s3;
mod server;
mod servers;
mod slurm;
mod stacks;
