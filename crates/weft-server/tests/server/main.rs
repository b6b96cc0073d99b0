//! The server's integration tests, one binary: the API, the dashboard in Chromium, TLS and a
//! database outage.

mod common;

mod api;
mod dashboard;
mod outage;
mod tls;
